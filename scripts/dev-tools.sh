#!/usr/bin/env bash
# The tools this machine needs for the tests, the demo and the benchmarks, installed from its own apt sources when
# missing (as root). One list for all three: scripts/test.sh, scripts/demo.sh and `npm run bench` run this first.
# The registry, containerd, busybox and friends are downloaded as .debs and unpacked by the tests themselves, never
# installed on this machine.
#   bash scripts/dev-tools.sh
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "dev-tools.sh: run as root: it installs packages with apt-get" >&2; exit 2; }

# systemd-container, debootstrap, iproute2: the lab hosts; openssh-client: reaching them; skopeo: image fixtures and
# the seeding benchmark; curl: the build benchmark's contender; gnupg, gpgv: signed fixtures; time: peak RSS in the
# benchmarks; strace: the tests that watch what a process opens; shellcheck: every shell script in the test command
need=(systemd-container debootstrap iproute2 openssh-client skopeo curl ca-certificates gnupg gpgv xz-utils strace time shellcheck)
missing=()
for p in "${need[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "dev-tools.sh: installing ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
elif [ -z "$(find /var/lib/apt/lists -maxdepth 1 -type f ! -name lock -print -quit 2>/dev/null)" ]; then
  apt-get update -q   # `apt-get download` in the test fixtures needs package lists
fi
