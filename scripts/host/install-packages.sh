#!/bin/bash
# Install packages from the bundle's signed apt repository ONLY: no other source is consulted, none is changed.
#   install-packages.sh <bundle dir[,bundle dir...]> <keyring file or "unsigned"> <packages to hold, comma-separated> <package[=version]>...
# Several bundle dirs (an upgrade: the new bundle's first, then those already on the host) are all sources, so a
# differential bundle's packages find their dependencies in the bundle it was made against.
# Services are not started by the packages (policy-rc.d): install starts what it configured, when it is ready.
set -euo pipefail
bundle=$1 keyring=$2 hold=$3; shift 3
state=${KB_ROOT:?set by install}/apt
mkdir -p "$state/lists/partial" "$state/cache/archives/partial"
if [ "$keyring" = unsigned ]; then opts='trusted=yes'; else opts="signed-by=$keyring"; fi
for b in ${bundle//,/ }; do echo "deb [$opts] file:$b/packages ./"; done > "$state/sources.list"
apt_opts=(-o "Dir::Etc::SourceList=$state/sources.list" -o Dir::Etc::SourceParts=/dev/null
          -o "Dir::State::Lists=$state/lists" -o "Dir::Cache=$state/cache" -o APT::Sandbox::User=root
          -o Dpkg::Options::=--force-confold -o DPkg::Lock::Timeout=0)

policy=/usr/sbin/policy-rc.d
cleanup() { [ -f "$policy.kube-bundle" ] && rm -f "$policy" "$policy.kube-bundle"; return 0; }
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && touch "$policy.kube-bundle"
  trap cleanup EXIT
fi

export DEBIAN_FRONTEND=noninteractive
# A dpkg run cut short (a session lost mid-install, a host that rebooted) leaves packages unpacked but not
# configured, or entries in dpkg's journal (updates/), and apt then refuses to run. Finish that run first: dpkg
# reports it in --audit, or the journal is not empty. A journal dpkg cannot read still fails here, naming it.
if [ -n "$(dpkg --audit 2>&1)" ] || [ -n "$(ls -A /var/lib/dpkg/updates 2>/dev/null)" ]; then
  echo "finishing an interrupted dpkg run: dpkg --configure -a"
  dpkg --force-confold --configure -a
fi
apt-get "${apt_opts[@]}" -q update
# the held Kubernetes packages change only when asked for by version (an upgrade); apt refuses that without the flag
apt-get "${apt_opts[@]}" -q -y --no-install-recommends --allow-change-held-packages install "$@"
held=()
for p in ${hold//,/ }; do dpkg-query -W "$p" >/dev/null 2>&1 && held+=("$p"); done
[ ${#held[@]} -eq 0 ] || apt-mark hold "${held[@]}" >/dev/null
