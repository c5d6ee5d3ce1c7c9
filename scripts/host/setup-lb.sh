#!/bin/bash
# Put the control-plane address's haproxy and keepalived configs in place and (re)start both.
#   setup-lb.sh <dir holding haproxy.cfg and keepalived.conf>      (run as root)
# Each config is checked by its own program before anything is replaced. The distribution's haproxy.cfg is kept as
# haproxy.cfg.kube-bundle-orig for `bundle reset` to put back. A running service is reloaded, not restarted:
# haproxy keeps its connections and keepalived its VRRP state, so the address does not move on a re-run.
#
# Safe to re-run after being cut at any line: every file is replaced by a rename (never left half-written), the
# distribution's config is set aside only while it is still in place, and <dir>/applied.sha256 (what install checks
# to skip this step) is removed before anything changes and written only after both services were reloaded.
set -euo pipefail
staged=$1
applied=$staged/applied.sha256
say() { echo "setup-lb: $*"; }

# A run cut by a lost SSH session may still be going: wait for it rather than interleave with it.
exec 9>/run/kube-bundle-setup-lb.lock
flock -w 120 9 || { echo "setup-lb: another setup-lb.sh still runs after 120s" >&2; exit 1; }

haproxy -c -q -f "$staged/haproxy.cfg" || { echo "setup-lb: haproxy refuses $staged/haproxy.cfg (above)" >&2; exit 1; }
keepalived -t -l -f "$staged/keepalived.conf" || { echo "setup-lb: keepalived refuses $staged/keepalived.conf (above)" >&2; exit 1; }

rm -f "$applied"
# put FILE: the staged copy into place, atomically
put() {
  install -D -m 644 "$staged/${1##*/}" "$1.kube-bundle-new"
  mv -f "$1.kube-bundle-new" "$1"
}
if [ -f /etc/haproxy/haproxy.cfg ] && ! grep -q 'Written by kube-bundle' /etc/haproxy/haproxy.cfg; then
  mv -f /etc/haproxy/haproxy.cfg /etc/haproxy/haproxy.cfg.kube-bundle-orig
fi
put /etc/haproxy/haproxy.cfg
put /etc/keepalived/keepalived.conf

# haproxy first: keepalived claims the address only while haproxy runs (its vrrp_script)
for service in haproxy keepalived; do
  systemctl enable --quiet "$service.service"
  systemctl reload-or-restart "$service.service"
  systemctl is-active --quiet "$service.service" || { journalctl -u "$service.service" -n 20 --no-pager >&2; exit 1; }
  say "$service running"
done
sha256sum /etc/haproxy/haproxy.cfg /etc/keepalived/keepalived.conf > "$applied.tmp"
mv -f "$applied.tmp" "$applied"
