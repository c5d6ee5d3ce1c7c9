#!/bin/bash
# The cluster's image registry on this host: a CA and a server certificate made here (once), storage seeded from
# the bundle, the kube-bundle-registry service started read-only.
#   setup-registry.sh <bundle dir> <address> <name>
# Expects /etc/kube-bundle/registry/config.yml and /etc/systemd/system/kube-bundle-registry.service in place.
set -euo pipefail
bundle=$1 address=$2 name=$3
pki=/etc/kube-bundle/pki storage=/var/lib/kube-bundle/registry

# The packaged docker-registry service (Debian's own config, htpasswd auth) would take the port: off for good.
systemctl disable --now --quiet docker-registry.service 2>/dev/null || true

mkdir -p "$pki" && chmod 755 "$pki"
if [ ! -s "$pki/ca.crt" ]; then
  openssl req -x509 -newkey rsa:3072 -nodes -sha256 -days 3650 -subj "/CN=kube-bundle registry CA ($name)" \
    -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
  chmod 600 "$pki/ca.key"
fi
if [ ! -s "$pki/registry.crt" ] || ! openssl x509 -in "$pki/registry.crt" -noout -checkend 2592000 >/dev/null; then
  san="IP:$address,DNS:$name,DNS:localhost,IP:127.0.0.1"
  [[ $address =~ ^[0-9.]+$|: ]] || san="DNS:$address,DNS:$name,DNS:localhost,IP:127.0.0.1"
  openssl req -newkey rsa:3072 -nodes -sha256 -subj "/CN=$name" -keyout "$pki/registry.key" -out "$pki/registry.csr" 2>/dev/null
  openssl x509 -req -in "$pki/registry.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -days 825 -sha256 \
    -extfile <(printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$san") -out "$pki/registry.crt" 2>/dev/null
  rm -f "$pki/registry.csr"
fi
chown root:docker-registry "$pki/registry.key" && chmod 640 "$pki/registry.key"

# Seed with the registry stopped (it caches what it has served), then start it.
systemctl stop kube-bundle-registry.service 2>/dev/null || true
"$bundle/installer/seed-registry.sh" "$bundle/installer/registry-seed.txt" "$bundle/images" "$storage"
systemctl daemon-reload
systemctl enable --now --quiet kube-bundle-registry.service
port=$(sed -n 's/^ *addr: *:\([0-9]*\)$/\1/p' /etc/kube-bundle/registry/config.yml)
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && { echo "registry: listening on :$port"; exit 0; }
  systemctl is-failed --quiet kube-bundle-registry.service && break
  sleep 0.2
done
echo "registry: kube-bundle-registry did not start listening on :$port" >&2
journalctl -u kube-bundle-registry.service -n 20 --no-pager >&2 || true
exit 1
