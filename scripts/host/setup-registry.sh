#!/bin/bash
# The cluster's image registry on this host: a CA and a server certificate made here (once), storage seeded from
# the bundle, the kube-bundle-registry service started read-only.
#   setup-registry.sh <bundle dir> <address> <name>
# Expects $KB_ETC/registry/config.yml and the unit file of $KB_REGISTRY_UNIT in place (install writes them).
# Paths: KB_ROOT, KB_ETC (and KB_REGISTRY_UNIT) come from install (host-paths.ts hostScriptEnv), never spelled here.
#
# Safe to re-run after being cut at any line: keys and certificates are made under temporary names and renamed
# into place, and kept only when they check out (a key that matches its certificate, a certificate the CA signed);
# the service is stopped before seeding and the seed completes what a cut one left; a unit written but not loaded
# or started is loaded and (re)started.
set -euo pipefail
bundle=$1 address=$2 name=$3
pki=${KB_ETC:?set by install}/pki storage=${KB_ROOT:?set by install}/registry unit=${KB_REGISTRY_UNIT:?set by install}

# A run cut by a lost SSH session may still be going: wait for it rather than interleave with it.
exec 9>/run/kube-bundle-setup-registry.lock
flock -w 300 9 || { echo "registry: another setup-registry.sh still runs after 300s" >&2; exit 1; }

# The packaged docker-registry service (Debian's own config, htpasswd auth) would take the port: off for good.
systemctl disable --now --quiet docker-registry.service 2>/dev/null || true

# pair_ok KEY CERT: both there, parseable, and the key is the certificate's
pair_ok() {
  [ -s "$1" ] && [ -s "$2" ] || return 1
  local k c
  k=$(openssl pkey -in "$1" -pubout 2>/dev/null) && c=$(openssl x509 -in "$2" -noout -pubkey 2>/dev/null) || return 1
  [ -n "$k" ] && [ "$k" = "$c" ]
}

mkdir -p "$pki" && chmod 755 "$pki"
if ! pair_ok "$pki/ca.key" "$pki/ca.crt"; then
  # no node trusts this CA yet: the runtime phase, which copies it to them, comes after this one
  openssl req -x509 -newkey rsa:3072 -nodes -sha256 -days 3650 -subj "/CN=kube-bundle registry CA ($name)" \
    -keyout "$pki/ca.key.new" -out "$pki/ca.crt.new" 2>/dev/null
  chmod 600 "$pki/ca.key.new"
  mv -f "$pki/ca.key.new" "$pki/ca.key" && mv -f "$pki/ca.crt.new" "$pki/ca.crt"
  rm -f "$pki/registry.crt"   # signed by the CA just replaced
fi
if ! pair_ok "$pki/registry.key" "$pki/registry.crt" \
  || ! openssl verify -CAfile "$pki/ca.crt" "$pki/registry.crt" >/dev/null 2>&1 \
  || ! openssl x509 -in "$pki/registry.crt" -noout -checkend 2592000 >/dev/null; then
  san="IP:$address,DNS:$name,DNS:localhost,IP:127.0.0.1"
  [[ $address =~ ^[0-9.]+$|: ]] || san="DNS:$address,DNS:$name,DNS:localhost,IP:127.0.0.1"
  openssl req -newkey rsa:3072 -nodes -sha256 -subj "/CN=$name" -keyout "$pki/registry.key.new" -out "$pki/registry.csr" 2>/dev/null
  openssl x509 -req -in "$pki/registry.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -days 825 -sha256 \
    -extfile <(printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$san") -out "$pki/registry.crt.new" 2>/dev/null
  chown root:docker-registry "$pki/registry.key.new" && chmod 640 "$pki/registry.key.new"
  # key first: cut between the two renames, the pair does not match and the next run makes a new one
  mv -f "$pki/registry.key.new" "$pki/registry.key" && mv -f "$pki/registry.crt.new" "$pki/registry.crt"
  rm -f "$pki/registry.csr"
fi
chown root:docker-registry "$pki/registry.key" && chmod 640 "$pki/registry.key"

# Seed with the registry stopped (it caches what it has served), then start it. A unit file rewritten since the
# last start is loaded first, so what starts is what install wrote.
systemctl daemon-reload
systemctl stop "$unit" 2>/dev/null || true
"$bundle/installer/seed-registry.sh" "$bundle/installer/registry-seed.txt" "$bundle/images" "$storage"
systemctl reset-failed "$unit" 2>/dev/null || true
systemctl enable --quiet "$unit"
systemctl restart "$unit"
port=$(sed -n 's/^ *addr: *:\([0-9]*\)$/\1/p' "$KB_ETC/registry/config.yml")
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && { echo "registry: listening on :$port"; exit 0; }
  systemctl is-failed --quiet "$unit" && break
  sleep 0.2
done
echo "registry: $unit did not start listening on :$port" >&2
journalctl -u "$unit" -n 20 --no-pager >&2 || true
exit 1
