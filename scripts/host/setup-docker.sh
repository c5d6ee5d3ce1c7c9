#!/bin/bash
# Docker and cri-dockerd for a kubeadm node: install the daemon.json kube-bundle computed, then (re)start both and
# wait until they answer; on failure print their logs and exit 1, never hang.
#   setup-docker.sh <new daemon.json> [<seconds to wait for each, default 90>]
# Expects /etc/docker/certs.d/<registry>/ca.crt and cri-docker's drop-in in place. Safe to re-run.
set -euo pipefail
new=$1 wait_s=${2:-90}
conf=/etc/docker/daemon.json
written=${KB_ETC:?set by install}/docker/daemon.json   # what install last put in $conf
kept=/etc/docker/daemon.json.kube-bundle-orig      # the site's own $conf, for reset to put back
[ -r "$new" ] || { echo "setup-docker: cannot read $new" >&2; exit 2; }

mkdir -p /etc/docker "${written%/*}"
if [ -e "$conf" ] && [ ! -e "$kept" ] && ! cmp -s "$conf" "$written"; then cp -p "$conf" "$kept"; fi
cp "$new" "$conf.tmp" && mv -f "$conf.tmp" "$conf"
mv -f "$new" "$written"

# wait_ready <unit> <probe command...>: until the probe succeeds; fails when the unit failed for good or time ran out
wait_ready() {
  local unit=$1 deadline=$((SECONDS + wait_s)) why; shift
  until "$@" >/dev/null 2>&1; do
    why=""
    if systemctl is-failed --quiet "$unit"; then why="failed to start"
    elif ((SECONDS >= deadline)); then why="not ready after ${wait_s}s ($(systemctl is-active "$unit" 2>/dev/null))"; fi
    if [ -n "$why" ]; then
      echo "setup-docker: $unit $why; its log:" >&2
      journalctl -u "$unit" -n 10 --no-pager -o cat >&2 || true   # install shows the last 12 lines of stderr
      exit 1
    fi
    sleep 0.2
  done
}

systemctl daemon-reload
systemctl enable --quiet docker.socket docker.service cri-docker.socket cri-docker.service
# Both units wait for their daemon's "ready" forever (TimeoutStartSec=0, TimeoutSec=0): restart without blocking, then poll.
systemctl reset-failed docker.service cri-docker.service 2>/dev/null || true
systemctl restart --no-block docker.service
wait_ready docker.service docker info
echo "setup-docker: dockerd $(docker info --format '{{.ServerVersion}}, storage driver {{.Driver}}, cgroup driver {{.CgroupDriver}}')"
systemctl restart --no-block cri-docker.socket cri-docker.service
wait_ready cri-docker.service systemctl is-active --quiet cri-docker.service
wait_ready cri-docker.service crictl --runtime-endpoint unix:///var/run/cri-dockerd.sock version
echo "setup-docker: cri-dockerd answers on /var/run/cri-dockerd.sock"
