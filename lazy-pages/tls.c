// SPDX-License-Identifier: MIT
/* GnuTLS sessions for the page-server connection; options and defaults as in CRIU. */
#define LOG_PREFIX "tls: "
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "log.h"
#include "tls.h"

struct lp_tls {
	gnutls_certificate_credentials_t cred;
	bool server;
	char *verify_host; /* NULL: chain only */
};

struct lp_tls_conn {
	struct lp_tls *t;
	gnutls_session_t s;
	char peer[96];
	int last; /* last GnuTLS error code */
	bool unclean_eof;
	char msg[160]; /* lp_tls_strerror() */
};

bool lp_tls_opt(struct lp_tls_opts *o, int c, const char *arg)
{
	switch (c) {
	case LP_OPT_TLS:
		o->enabled = true;
		return true;
	case LP_OPT_TLS_CACERT:
		o->cacert = arg;
		return true;
	case LP_OPT_TLS_CACRL:
		o->cacrl = arg;
		return true;
	case LP_OPT_TLS_CERT:
		o->cert = arg;
		return true;
	case LP_OPT_TLS_KEY:
		o->key = arg;
		return true;
	case LP_OPT_TLS_NO_CN_VERIFY:
		o->no_cn_verify = true;
		return true;
	}
	return false;
}

static int load_trust(struct lp_tls *t, const struct lp_tls_opts *o)
{
	int ret;

	if (o->cacert) {
		ret = gnutls_certificate_set_x509_trust_file(t->cred, o->cacert,
							     GNUTLS_X509_FMT_PEM);
		if (ret < 0) {
			pr_err("--tls-cacert %s: cannot load: %s", o->cacert, gnutls_strerror(ret));
			return -EINVAL;
		}
		if (ret == 0) {
			pr_err("--tls-cacert %s: no CA certificate in it (PEM expected)",
			       o->cacert);
			return -EINVAL;
		}
		pr_info("%d CA certificate(s) from %s", ret, o->cacert);
		return 0;
	}
	ret = gnutls_certificate_set_x509_system_trust(t->cred);
	if (ret < 0)
		pr_warn("system trust store: %s", gnutls_strerror(ret));
	if (access(LP_TLS_DEFAULT_CACERT, R_OK) == 0) {
		ret = gnutls_certificate_set_x509_trust_file(t->cred, LP_TLS_DEFAULT_CACERT,
							     GNUTLS_X509_FMT_PEM);
		if (ret < 0) {
			pr_err("%s: cannot load: %s", LP_TLS_DEFAULT_CACERT, gnutls_strerror(ret));
			return -EINVAL;
		}
	}
	return 0;
}

static int load_crl(struct lp_tls *t, const struct lp_tls_opts *o)
{
	const char *crl = o->cacrl;
	int ret;

	if (!crl) {
		if (access(LP_TLS_DEFAULT_CACRL, R_OK))
			return 0;
		crl = LP_TLS_DEFAULT_CACRL;
	}
	ret = gnutls_certificate_set_x509_crl_file(t->cred, crl, GNUTLS_X509_FMT_PEM);
	if (ret < 0) {
		pr_err("--tls-cacrl %s: cannot load: %s", crl, gnutls_strerror(ret));
		return -EINVAL;
	}
	pr_info("%d CRL(s) from %s", ret, crl);
	return 0;
}

int lp_tls_new(struct lp_tls **out, const struct lp_tls_opts *o, bool server,
	       const char *verify_host)
{
	const char *cert = o->cert ? o->cert : LP_TLS_DEFAULT_CERT;
	const char *key = o->key ? o->key : LP_TLS_DEFAULT_KEY;
	struct lp_tls *t = calloc(1, sizeof(*t));
	int ret;

	*out = NULL;
	if (!t)
		return -ENOMEM;
	t->server = server;
	if (verify_host && !o->no_cn_verify) {
		t->verify_host = strdup(verify_host);
		if (!t->verify_host) {
			free(t);
			return -ENOMEM;
		}
	}
	ret = gnutls_certificate_allocate_credentials(&t->cred);
	if (ret < 0) {
		pr_err("cannot allocate credentials: %s", gnutls_strerror(ret));
		free(t->verify_host);
		free(t);
		return -ENOMEM;
	}
	ret = load_trust(t, o);
	if (!ret)
		ret = load_crl(t, o);
	if (!ret) {
		int r = gnutls_certificate_set_x509_key_file(t->cred, cert, key,
							     GNUTLS_X509_FMT_PEM);

		if (r < 0) {
			pr_err("cannot load certificate %s with key %s: %s", cert, key,
			       gnutls_strerror(r));
			ret = -EINVAL;
		}
	}
	if (ret) {
		lp_tls_free(t);
		return ret;
	}
	pr_info("%s credentials: cert %s, peer name check %s", server ? "server" : "client", cert,
		t->verify_host ? t->verify_host : "off");
	*out = t;
	return 0;
}

void lp_tls_free(struct lp_tls *t)
{
	if (!t)
		return;
	if (t->cred)
		gnutls_certificate_free_credentials(t->cred);
	free(t->verify_host);
	free(t);
}

int lp_tls_conn_new(struct lp_tls *t, int fd, const char *peer, struct lp_tls_conn **out)
{
	struct lp_tls_conn *tc = calloc(1, sizeof(*tc));
	unsigned int flags = GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL;
	int ret;

	*out = NULL;
	if (!tc)
		return -ENOMEM;
	tc->t = t;
	snprintf(tc->peer, sizeof(tc->peer), "%s", peer ? peer : "?");
	ret = gnutls_init(&tc->s, (t->server ? GNUTLS_SERVER : GNUTLS_CLIENT) | flags);
	if (ret < 0) {
		pr_err("%s: gnutls_init: %s", tc->peer, gnutls_strerror(ret));
		free(tc);
		return -ENOMEM;
	}
	ret = gnutls_set_default_priority(tc->s);
	if (ret >= 0)
		ret = gnutls_credentials_set(tc->s, GNUTLS_CRD_CERTIFICATE, t->cred);
	if (ret < 0) {
		pr_err("%s: session setup: %s", tc->peer, gnutls_strerror(ret));
		lp_tls_conn_free(tc);
		return -EINVAL;
	}
	if (t->server)
		gnutls_certificate_server_set_request(tc->s, GNUTLS_CERT_REQUIRE);
	/* The handshake itself fails (with an alert to the peer) on a bad certificate. */
	gnutls_session_set_verify_cert(tc->s, t->verify_host, 0);
	gnutls_transport_set_int(tc->s, fd);
	*out = tc;
	return 0;
}

void lp_tls_conn_free(struct lp_tls_conn *tc)
{
	if (!tc)
		return;
	gnutls_deinit(tc->s);
	free(tc);
}

static bool is_again(int ret)
{
	return ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED;
}

static void log_verify_failure(struct lp_tls_conn *tc)
{
	unsigned int status = gnutls_session_get_verify_cert_status(tc->s);
	gnutls_datum_t out = {0};

	if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &out, 0) < 0) {
		pr_err("TLS handshake with %s failed: the %s's certificate was rejected (status "
		       "%#x)",
		       tc->peer, tc->t->server ? "client" : "server", status);
		return;
	}
	pr_err("TLS handshake with %s failed: the %s's certificate was rejected: %s%s%s", tc->peer,
	       tc->t->server ? "client" : "server", (const char *)out.data,
	       (status & GNUTLS_CERT_UNEXPECTED_OWNER) && tc->t->verify_host ? " Expected name: "
									     : "",
	       (status & GNUTLS_CERT_UNEXPECTED_OWNER) && tc->t->verify_host ? tc->t->verify_host
									     : "");
	gnutls_free(out.data);
}

int lp_tls_handshake(struct lp_tls_conn *tc)
{
	int ret = gnutls_handshake(tc->s);

	if (ret == GNUTLS_E_SUCCESS) {
		char *desc = gnutls_session_get_desc(tc->s);

		pr_info("TLS with %s: %s", tc->peer, desc ? desc : "?");
		gnutls_free(desc);
		return 0;
	}
	if (is_again(ret) || (ret < 0 && !gnutls_error_is_fatal(ret)))
		return -EAGAIN;
	tc->last = ret;
	/* Tell the peer why, where the failure is ours (best effort: non-blocking). */
	if (ret != GNUTLS_E_FATAL_ALERT_RECEIVED && ret != GNUTLS_E_PREMATURE_TERMINATION &&
	    ret != GNUTLS_E_PULL_ERROR && ret != GNUTLS_E_PUSH_ERROR)
		gnutls_alert_send_appropriate(tc->s, ret);
	if (ret == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
		log_verify_failure(tc);
		return -EKEYREJECTED;
	}
	if (ret == GNUTLS_E_FATAL_ALERT_RECEIVED) {
		gnutls_alert_description_t a = gnutls_alert_get(tc->s);

		pr_err("TLS handshake with %s failed: %s", tc->peer, lp_tls_strerror(tc));
		return a == GNUTLS_A_UNKNOWN_CA || a == GNUTLS_A_BAD_CERTIFICATE ||
				       a == GNUTLS_A_CERTIFICATE_UNKNOWN ||
				       a == GNUTLS_A_CERTIFICATE_REQUIRED
			       ? -EKEYREJECTED
			       : -EPROTO;
	}
	if (ret == GNUTLS_E_NO_CERTIFICATE_FOUND || ret == GNUTLS_E_CERTIFICATE_REQUIRED) {
		pr_err("TLS handshake with %s failed: the client sent no certificate issued by "
		       "a CA this server trusts (it needs one: check the client's "
		       "--tls-cert/--tls-key and this server's --tls-cacert)",
		       tc->peer);
		return -EKEYREJECTED;
	}
	if (ret == GNUTLS_E_PREMATURE_TERMINATION || ret == GNUTLS_E_PULL_ERROR ||
	    ret == GNUTLS_E_PUSH_ERROR) {
		pr_err("TLS handshake with %s failed: the connection broke (%s); is the peer "
		       "speaking TLS?",
		       tc->peer, gnutls_strerror(ret));
		return -ECONNRESET;
	}
	pr_err("TLS handshake with %s failed: %s", tc->peer, gnutls_strerror(ret));
	return -EPROTO;
}

bool lp_tls_want_write(const struct lp_tls_conn *tc)
{
	return gnutls_record_get_direction(tc->s) == 1;
}

ssize_t lp_tls_send(struct lp_tls_conn *tc, const void *buf, size_t len)
{
	ssize_t ret = gnutls_record_send(tc->s, buf, len);

	if (ret >= 0)
		return ret;
	if (is_again(ret))
		return -EAGAIN;
	tc->last = ret;
	if (ret == GNUTLS_E_PUSH_ERROR)
		return -EPIPE;
	return -EPROTO;
}

ssize_t lp_tls_recv(struct lp_tls_conn *tc, void *buf, size_t len)
{
	ssize_t ret = gnutls_record_recv(tc->s, buf, len);

	if (ret >= 0)
		return ret;
	if (is_again(ret))
		return -EAGAIN;
	tc->last = ret;
	if (ret == GNUTLS_E_PREMATURE_TERMINATION) {
		tc->unclean_eof = true;
		return 0;
	}
	if (ret == GNUTLS_E_REHANDSHAKE || ret == GNUTLS_E_WARNING_ALERT_RECEIVED)
		return -EAGAIN; /* ignored: nothing to read yet */
	if (ret == GNUTLS_E_PULL_ERROR)
		return -ECONNRESET;
	return -EPROTO;
}

size_t lp_tls_pending(const struct lp_tls_conn *tc)
{
	return gnutls_record_check_pending(tc->s);
}

void lp_tls_bye(struct lp_tls_conn *tc)
{
	int ret;

	do
		ret = gnutls_bye(tc->s, GNUTLS_SHUT_WR);
	while (ret == GNUTLS_E_INTERRUPTED);
	if (ret < 0 && ret != GNUTLS_E_AGAIN)
		pr_debug("%s: close_notify not sent: %s", tc->peer, gnutls_strerror(ret));
}

const char *lp_tls_strerror(struct lp_tls_conn *tc)
{
	if (!tc->last)
		return "no TLS error";
	if (tc->last == GNUTLS_E_FATAL_ALERT_RECEIVED) {
		gnutls_alert_description_t a = gnutls_alert_get(tc->s);

		snprintf(tc->msg, sizeof(tc->msg), "TLS alert from the peer: %s%s",
			 gnutls_alert_get_name(a),
			 a == GNUTLS_A_UNKNOWN_CA || a == GNUTLS_A_BAD_CERTIFICATE ||
					 a == GNUTLS_A_CERTIFICATE_UNKNOWN ||
					 a == GNUTLS_A_CERTIFICATE_REQUIRED
				 ? " (it rejected our certificate: check --tls-cert and the "
				   "peer's --tls-cacert)"
				 : "");
		return tc->msg;
	}
	return gnutls_strerror(tc->last);
}

bool lp_tls_unclean_eof(const struct lp_tls_conn *tc)
{
	return tc->unclean_eof;
}
