/* SPDX-License-Identifier: MIT */
/*
 * TLS for the page-server connection (GnuTLS), with CRIU's options and defaults:
 *
 *	--tls               use TLS
 *	--tls-cacert FILE   trusted CA(s), PEM; default: the system trust store plus
 *	                    /etc/pki/CA/cacert.pem when readable
 *	--tls-cacrl FILE    CRL, PEM; default: /etc/pki/CA/cacrl.pem when readable
 *	--tls-cert FILE     our certificate, PEM; default /etc/pki/criu/cert.pem
 *	--tls-key FILE      its private key, PEM; default /etc/pki/criu/private/key.pem
 *	--tls-no-cn-verify  do not check the peer certificate's name against --address
 *
 * Both ends present a certificate (a server requires one from its client) and verify the
 * peer's chain; unless --tls-no-cn-verify, the peer's certificate must also match the
 * --address given (DNS name or IP address in its subject/SAN), as CRIU does. A server
 * without --address checks the chain only.
 *
 * No GnuTLS type appears here: only tls.c and conn.c deal with sessions.
 */
#ifndef LP_TLS_H
#define LP_TLS_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct lp_tls_opts {
	bool enabled;	    /* --tls */
	const char *cacert; /* NULL: CRIU's default, see above */
	const char *cacrl;
	const char *cert;
	const char *key;
	bool no_cn_verify;
};

#define LP_TLS_DEFAULT_CACERT "/etc/pki/CA/cacert.pem"
#define LP_TLS_DEFAULT_CACRL  "/etc/pki/CA/cacrl.pem"
#define LP_TLS_DEFAULT_CERT   "/etc/pki/criu/cert.pem"
#define LP_TLS_DEFAULT_KEY    "/etc/pki/criu/private/key.pem"

/* getopt_long() values and entries for the options above, shared by the commands. */
enum {
	LP_OPT_TLS = 0x7400,
	LP_OPT_TLS_CACERT,
	LP_OPT_TLS_CACRL,
	LP_OPT_TLS_CERT,
	LP_OPT_TLS_KEY,
	LP_OPT_TLS_NO_CN_VERIFY,
};

/* clang-format off */
#define LP_TLS_LONG_OPTIONS                                                                        \
	{"tls", no_argument, NULL, LP_OPT_TLS},                                                    \
	{"tls-cacert", required_argument, NULL, LP_OPT_TLS_CACERT},                                \
	{"tls-cacrl", required_argument, NULL, LP_OPT_TLS_CACRL},                                  \
	{"tls-cert", required_argument, NULL, LP_OPT_TLS_CERT},                                    \
	{"tls-key", required_argument, NULL, LP_OPT_TLS_KEY},                                      \
	{"tls-no-cn-verify", no_argument, NULL, LP_OPT_TLS_NO_CN_VERIFY}
/* clang-format on */

#define LP_TLS_USAGE                                                                               \
	"      --tls              use TLS (GnuTLS); both ends present a certificate\n"             \
	"      --tls-cacert FILE  trusted CA (PEM; default: system trust + " LP_TLS_DEFAULT_CACERT \
	")\n"                                                                                      \
	"      --tls-cacrl FILE   revocation list (PEM; default " LP_TLS_DEFAULT_CACRL             \
	" if readable)\n"                                                                          \
	"      --tls-cert FILE    certificate (PEM; default " LP_TLS_DEFAULT_CERT ")\n"            \
	"      --tls-key FILE     private key (PEM; default " LP_TLS_DEFAULT_KEY ")\n"             \
	"      --tls-no-cn-verify do not match the peer certificate against --address\n"

/* Handle option C (from LP_TLS_LONG_OPTIONS) with argument ARG. False if C is not ours. */
bool lp_tls_opt(struct lp_tls_opts *o, int c, const char *arg);

/* Credentials for one role (server or client). */
struct lp_tls;

/*
 * Load the certificates named by O. VERIFY_HOST is the name (or IP address) the peer's
 * certificate must carry, or NULL for a chain-only check; it is ignored with
 * o->no_cn_verify. Returns 0 or -errno after logging which file is wrong and why.
 */
int lp_tls_new(struct lp_tls **t, const struct lp_tls_opts *o, bool server,
	       const char *verify_host);
void lp_tls_free(struct lp_tls *t);

/* One TLS session over a connected, non-blocking socket. */
struct lp_tls_conn;

int lp_tls_conn_new(struct lp_tls *t, int fd, const char *peer, struct lp_tls_conn **out);
void lp_tls_conn_free(struct lp_tls_conn *tc);
/*
 * Advance the handshake: 0 when done (peer verified), -EAGAIN when it waits for the
 * socket (lp_tls_want_write() tells which way), -EKEYREJECTED when the peer's certificate
 * was refused, another -errno on other failures; failures are logged with the reason.
 */
int lp_tls_handshake(struct lp_tls_conn *tc);
bool lp_tls_want_write(const struct lp_tls_conn *tc);
/*
 * Send up to LEN bytes as one record (at most the maximum record size; returns what was
 * taken). On -EAGAIN the caller must call again with the same buffer and length.
 */
ssize_t lp_tls_send(struct lp_tls_conn *tc, const void *buf, size_t len);
/* > 0 bytes, 0 at the end of the stream, -EAGAIN, or -errno (-EPROTO: see lp_tls_strerror) */
ssize_t lp_tls_recv(struct lp_tls_conn *tc, void *buf, size_t len);
/* Decrypted bytes buffered inside GnuTLS: epoll will not report them. */
size_t lp_tls_pending(const struct lp_tls_conn *tc);
/* Send close_notify (best effort, does not wait for the peer's). */
void lp_tls_bye(struct lp_tls_conn *tc);
/* GnuTLS's text for the last failure of this session. */
const char *lp_tls_strerror(struct lp_tls_conn *tc);
/* The peer ended the stream without close_notify (counted as an end of stream). */
bool lp_tls_unclean_eof(const struct lp_tls_conn *tc);

#endif
