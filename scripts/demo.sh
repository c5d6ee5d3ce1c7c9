#!/usr/bin/env bash
# The main job, end to end, on this machine: build a signed bundle of Kubernetes v1.32.3 for Debian 12 from the
# simulated upstream (pkgs.k8s.io, registries, GitHub) and this machine's Debian archive, verify it, then install a
# cluster from it onto three lab hosts (Debian 12 containers with no route out) and show the nodes.
#   sudo bash scripts/demo.sh [--keep]     (--keep leaves the lab hosts up: bash test/lab/hostlab.sh down)
# Everything it makes goes under ./.work/demo (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo: run as root (the lab hosts need network namespaces and systemd-nspawn)" >&2; exit 2; }
keep=${1:-}
out=$PWD/.work/demo
mkdir -p "$out"

bash scripts/dev-tools.sh
[ -d node_modules ] || npm ci --no-audit --no-fund
npm run --silent build
bundle() { node dist/src/cli/main.js "$@"; }

echo "== simulated upstream"
node --import tsx test/upstream/serve.ts > "$out/upstream.json" &
upstream=$!
cleanup() { kill "$upstream" 2>/dev/null || true; [ "$keep" = --keep ] || bash test/lab/hostlab.sh down >/dev/null 2>&1 || true; }
trap cleanup EXIT
for _ in $(seq 600); do [ -s "$out/upstream.json" ] && break; kill -0 "$upstream" || exit 1; sleep 0.1; done
mapfile -t mirrors < <(node -e 'for (const m of JSON.parse(require("fs").readFileSync(process.argv[1])).mirrorFlags) console.log("--mirror=" + m)' "$out/upstream.json")
k8skey=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1])).k8sKeyFile)' "$out/upstream.json")
# The simulated GitHub's release files are not the real ones pinned in bundles/components.yaml: pin what it serves.
mapfile -t pins < <(node -e 'for (const p of JSON.parse(require("fs").readFileSync(process.argv[1])).pinFlags) console.log("--pin=" + p)' "$out/upstream.json")
# The target's Debian archive names, mapped onto the archive this machine's apt uses (read at run time).
main=$(awk '/^URIs:/ {print $2}' /etc/apt/sources.list.d/*.sources | grep -m1 '/debian$')
security=$(awk '/^URIs:/ {print $2}' /etc/apt/sources.list.d/*.sources | grep -m1 '/debian-security$')

echo "== bundle keygen"
[ -f "$out/keys/signer.asc" ] || bundle keygen --out "$out/keys"
echo "== bundle build v1.32.3 -t debian-12"
bundle build v1.32.3 -t debian-12 --key "$out/keys/signer.asc" -o "$out/kube-bundle-v1.32.3-debian-12-amd64.tar" \
  "${mirrors[@]}" --mirror "http://ftp.debian.org/debian=$main" --mirror "http://security.debian.org/debian-security=$security" \
  --trust-key "$k8skey" "${pins[@]}" --cache "$out/cache"
kill "$upstream"; wait "$upstream" 2>/dev/null || true   # from here on, nothing upstream is reachable
echo "== bundle verify"
bundle verify "$out/kube-bundle-v1.32.3-debian-12-amd64.tar" --pubkey "$out/keys/signer.pub.asc"
bundle inspect "$out/kube-bundle-v1.32.3-debian-12-amd64.tar" | head -8

echo "== three lab hosts"
bash test/lab/hostlab.sh up 3
lab=/var/tmp/kube-bundle-lab
mapfile -t ips < "$lab/hosts.txt"
printf '%s control-plane\n%s worker\n%s worker\n' "${ips[0]}" "${ips[1]}" "${ips[2]}" > "$out/hosts.txt"
echo "== bundle install"
ip netns exec hl-lab node dist/src/cli/main.js install --hosts "$out/hosts.txt" \
  --bundle "$out/kube-bundle-v1.32.3-debian-12-amd64.tar" --pubkey "$out/keys/signer.pub.asc" \
  -i "$lab/keys/id_ed25519" --known-hosts "$lab/known_hosts"
echo "== kubectl get nodes (on the control plane)"
bash test/lab/hostlab.sh ssh 1 kubectl get nodes
