#!/usr/bin/env bash
# A test CA and server certificates for the https compat run (openssl, P-256).
#
#   tls.sh ca DIR          DIR/ca.key, DIR/ca.pem
#   tls.sh issue DIR NAME  DIR/tls.key, DIR/tls.crt (CN=NAME, for 127.0.0.1 and localhost),
#                          signed by DIR's CA; each file replaced by a rename, as a
#                          certificate manager does
set -Eeuo pipefail

cmd="${1:?usage: tls.sh ca DIR | tls.sh issue DIR NAME}"
dir="${2:?directory}"
case "$cmd" in
    ca)
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
            -keyout "$dir/ca.key" -out "$dir/ca.pem" -subj "/CN=JustStorage compat CA" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
        ;;
    issue)
        name="${3:?certificate name}"
        ext="$dir/leaf.ext"
        printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "basicConstraints=critical,CA:FALSE" \
            "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" \
            "subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid" >"$ext"
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
            -keyout "$dir/tls.key.new" -out "$dir/tls.csr" -subj "/CN=$name" 2>/dev/null
        openssl x509 -req -in "$dir/tls.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
            -set_serial "0x$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" -days 2 \
            -extfile "$ext" -out "$dir/tls.crt.new" 2>/dev/null
        mv -f "$dir/tls.key.new" "$dir/tls.key"
        mv -f "$dir/tls.crt.new" "$dir/tls.crt"
        ;;
    *)
        echo "unknown command: $cmd" >&2
        exit 2
        ;;
esac
