#!/usr/bin/env bash
# Makes the certificates of the cluster's internal gRPC for mutual TLS: a CA, and for each
# service named a key and a certificate signed by it, valid for the name itself, localhost and
# 127.0.0.1 (plus any extra names in CERT_HOSTS, comma-separated, e.g. container names).
#   ops/make-internal-certs.sh DIR NAME...      e.g. ops/make-internal-certs.sh .stack/tls gate status verify chat
# Writes DIR/ca.pem (and ca.key, which signs; keep it off the servers) and DIR/NAME.pem,
# DIR/NAME.key. What already exists is kept, so running it again adds only new names. Point
# each service at them with INTERNAL_TLS_CA=DIR/ca.pem INTERNAL_TLS_CERT=DIR/NAME.pem
# INTERNAL_TLS_KEY=DIR/NAME.key.
set -euo pipefail
dir=${1:?usage: make-internal-certs.sh DIR NAME...}
shift
command -v openssl >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null
}
mkdir -p "$dir"
umask 077
if [ ! -f "$dir/ca.pem" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
    -subj "/CN=shardchat internal CA" -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
fi
for name in "$@"; do
  [ -f "$dir/$name.pem" ] && continue
  sans="DNS:$name,DNS:localhost,IP:127.0.0.1"
  for extra in ${CERT_HOSTS:+${CERT_HOSTS//,/ }}; do sans="$sans,DNS:$extra"; done
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$name" \
    -keyout "$dir/$name.key" -out "$dir/$name.csr" 2>/dev/null
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 825 -out "$dir/$name.pem" \
    -extfile <(printf "subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n" "$sans") 2>/dev/null
  rm -f "$dir/$name.csr"
done
chmod 644 "$dir"/*.pem
