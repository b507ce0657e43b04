#!/bin/sh
# Generates the throw-away TLS material of tests/unit/test_http_client.c:
# a test CA, a server certificate for localhost/127.0.0.1 and one for a wrong
# host name, all EC P-256, valid for ten years. The outputs are committed;
# run this again only to renew them (the tests read the files, never this).
set -eu
cd "$(dirname "$0")"

days=3650
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

newkey() {
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"
}

newkey "$tmp/ca.key"
openssl req -x509 -new -key "$tmp/ca.key" -sha256 -days "$days" \
	-subj "/CN=bayarhook test CA" \
	-addext "basicConstraints=critical,CA:TRUE" \
	-addext "keyUsage=critical,keyCertSign,cRLSign" \
	-addext "subjectKeyIdentifier=hash" \
	-out ca.crt

# leaf NAME CN SAN
leaf() {
	newkey "$1.key"
	openssl req -new -key "$1.key" -subj "/CN=$2" -out "$tmp/$1.csr"
	cat >"$tmp/$1.ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=$3
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
EXT
	openssl x509 -req -in "$tmp/$1.csr" -CA ca.crt -CAkey "$tmp/ca.key" \
		-set_serial "0x$(openssl rand -hex 16)" -days "$days" -sha256 \
		-extfile "$tmp/$1.ext" -out "$1.crt"
	chmod 644 "$1.key"
}

leaf localhost localhost "DNS:localhost,IP:127.0.0.1"
leaf wrong wrong.example "DNS:wrong.example"
