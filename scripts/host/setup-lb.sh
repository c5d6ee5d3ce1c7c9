#!/bin/bash
# Put the control-plane address's haproxy and keepalived configs in place and (re)start both.
#   setup-lb.sh <dir holding haproxy.cfg and keepalived.conf>      (run as root)
# Each config is checked by its own program before anything is replaced. The distribution's haproxy.cfg is kept as
# haproxy.cfg.kube-bundle-orig for `bundle reset` to put back. A running service is reloaded, not restarted:
# haproxy keeps its connections and keepalived its VRRP state, so the address does not move on a re-run.
set -euo pipefail
staged=$1
say() { echo "setup-lb: $*"; }

haproxy -c -q -f "$staged/haproxy.cfg" || { echo "setup-lb: haproxy refuses $staged/haproxy.cfg (above)" >&2; exit 1; }
keepalived -t -l -f "$staged/keepalived.conf" || { echo "setup-lb: keepalived refuses $staged/keepalived.conf (above)" >&2; exit 1; }

if [ -f /etc/haproxy/haproxy.cfg ] && ! grep -q 'Written by kube-bundle' /etc/haproxy/haproxy.cfg; then
  mv -f /etc/haproxy/haproxy.cfg /etc/haproxy/haproxy.cfg.kube-bundle-orig
fi
install -D -m 644 "$staged/haproxy.cfg" /etc/haproxy/haproxy.cfg
install -D -m 644 "$staged/keepalived.conf" /etc/keepalived/keepalived.conf

# haproxy first: keepalived claims the address only while haproxy runs (its vrrp_script)
for service in haproxy keepalived; do
  systemctl enable --quiet "$service.service"
  systemctl reload-or-restart "$service.service"
  systemctl is-active --quiet "$service.service" || { journalctl -u "$service.service" -n 20 --no-pager >&2; exit 1; }
  say "$service running"
done
