#!/usr/bin/env bash
# Makes a private CA and certificates for a Kavka cluster, with openssl (no external CA):
#   deploy/certs.sh OUT_DIR [NAME...]
# writes OUT_DIR/ca.pem (trust this), OUT_DIR/ca.key, and for the server
# OUT_DIR/server.pem (its key, then its certificate chain: one file for
# ssl_keystore_location) valid for localhost, 127.0.0.1 and each NAME (e.g. node1 node2
# node3), and a client certificate OUT_DIR/client.pem + client.key (CN=client,OU=clients,O=Kavka) for mTLS.
# Valid 825 days. Idempotent only in the sense that it overwrites OUT_DIR's files.
# OUT_DIR, ca.pem, server.pem and client.pem are left readable by all (0755/0644) so a
# container running as another uid (the kavka image's 10001, through a read-only bind
# mount: docker-compose.secure.yml) can read them: server.pem holds the server's key, so
# this is for a development CA only. ca.key and client.key stay private (0600).
set -euo pipefail
out=${1:?usage: deploy/certs.sh OUT_DIR [NAME...]}
shift
mkdir -p "$out"
cd "$out"
san="DNS:localhost,IP:127.0.0.1"
for n in "$@"; do san="$san,DNS:$n"; done

openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=kavka-ca" \
  -keyout ca.key -out ca.pem 2>/dev/null

issue() { # name subject extensions
  openssl req -newkey rsa:2048 -nodes -subj "$2" -keyout "$1.key" -out "$1.csr" 2>/dev/null
  printf '%s\n' "$3" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 825 \
    -extfile "$1.ext" -out "$1.crt" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
issue server "/CN=kavka" "subjectAltName=$san
extendedKeyUsage=serverAuth,clientAuth"
cat server.key server.crt > server.pem
issue client "/O=Kavka/OU=clients/CN=client" "extendedKeyUsage=clientAuth"
cp client.crt client.pem
chmod 0755 .
chmod 0644 ca.pem server.pem client.pem
chmod 0600 ca.key server.key client.key
echo "certs: $out/ca.pem, $out/server.pem ($san), $out/client.pem + client.key"
