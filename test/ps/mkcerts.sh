#!/usr/bin/env bash
# Make the certificates the page-server TLS tests use, with certtool (gnutls-bin):
#
#   ca.pem, ca-key.pem           the test CA
#   srv.pem, srv-key.pem         server: CN localhost, SAN localhost, 127.0.0.1, ::1
#   cli.pem, cli-key.pem         client: the same names (a server checks them against
#                                its --address unless --tls-no-cn-verify, as CRIU does)
#   other.pem, other-key.pem     server signed by the CA, but only for other.example
#   ca2.pem, ca2-key.pem         a second, unrelated CA
#   cli2.pem, cli2-key.pem       client signed by the second CA
#   ca-crl.pem                   an (empty) revocation list of the CA
#
#   test/ps/mkcerts.sh DIR       exit 77 when certtool is missing
set -eu
command -v certtool >/dev/null || { echo "certtool not found (package gnutls-bin)"; exit 77; }
d=$1
mkdir -p "$d"
cd "$d"

key() { certtool --generate-privkey --key-type=ecdsa --outfile "$1" >/dev/null 2>&1; }

ca() { # NAME CN
	key "$1-key.pem"
	printf 'cn = "%s"\nca\ncert_signing_key\ncrl_signing_key\nexpiration_days = 30\n' "$2" >"$1.tmpl"
	certtool --generate-self-signed --load-privkey "$1-key.pem" --template "$1.tmpl" \
		--outfile "$1.pem" >/dev/null 2>&1
}

leaf() { # NAME CA CN [SAN lines...]
	local name=$1 ca=$2 cn=$3
	shift 3
	key "$name-key.pem"
	{
		printf 'cn = "%s"\n' "$cn"
		for san in "$@"; do printf '%s\n' "$san"; done
		printf 'tls_www_server\ntls_www_client\nsigning_key\nencryption_key\nexpiration_days = 30\n'
	} >"$name.tmpl"
	certtool --generate-certificate --load-privkey "$name-key.pem" \
		--load-ca-certificate "$ca.pem" --load-ca-privkey "$ca-key.pem" \
		--template "$name.tmpl" --outfile "$name.pem" >/dev/null 2>&1
}

local_names=('dns_name = "localhost"' 'ip_address = "127.0.0.1"' 'ip_address = "::1"')
ca ca "lazypages test CA"
ca ca2 "lazypages other CA"
leaf srv ca localhost "${local_names[@]}"
leaf cli ca localhost "${local_names[@]}"
leaf other ca other.example 'dns_name = "other.example"'
leaf cli2 ca2 localhost "${local_names[@]}"
printf 'crl_next_update = 30\ncrl_number = 1\n' >crl.tmpl
certtool --generate-crl --load-ca-privkey ca-key.pem --load-ca-certificate ca.pem \
	--template crl.tmpl --outfile ca-crl.pem >/dev/null 2>&1
echo "certificates in $d"
