#!/bin/bash
# Undo what `bundle install` did on this host, so that it can be installed again.
#   reset-host.sh [--purge]      (run as root; --purge also removes the packages install added)
# Only files install wrote are removed: each is recognised by its "Written by kube-bundle" line or its path.
set -uo pipefail
purge=${1:-}
state=/var/lib/kube-bundle
say() { echo "reset: $*"; }
cri_dropin=/etc/systemd/system/cri-docker.service.d/kube-bundle.conf

# On a Docker node containerd's socket is there too: kubeadm must be told which runtime the node used.
cri_socket=()
[ -e "$cri_dropin" ] && cri_socket=(--cri-socket unix:///var/run/cri-dockerd.sock)
if command -v kubeadm >/dev/null; then
  kubeadm reset -f "${cri_socket[@]}" >/dev/null 2>&1 && say "kubeadm reset done" || say "kubeadm reset reported an error (continuing)"
fi
systemctl disable --now --quiet kubelet 2>/dev/null || true
if [ -e /etc/systemd/system/kube-bundle-registry.service ]; then
  systemctl disable --now --quiet kube-bundle-registry.service
  rm -f /etc/systemd/system/kube-bundle-registry.service
  systemctl daemon-reload
  say "registry removed"
fi

# The control-plane address (--vip): keepalived first, so the address is given up before haproxy stops.
unconfigure() {  # unconfigure SERVICE CONFIG: stop, disable and unconfigure SERVICE if install configured it
  [ -f "$2" ] && grep -q 'Written by kube-bundle' "$2" || return 0
  systemctl disable --now --quiet "$1.service" 2>/dev/null || true
  rm -f "$2"
  [ -f "$2.kube-bundle-orig" ] && mv -f "$2.kube-bundle-orig" "$2"   # the distribution's, set aside by setup-lb.sh
  say "$1 stopped, its config removed"
}
unconfigure keepalived /etc/keepalived/keepalived.conf
unconfigure haproxy /etc/haproxy/haproxy.cfg

for f in /etc/containerd/certs.d/*/hosts.toml /etc/containerd/config.toml; do
  [ -f "$f" ] && grep -q 'Written by kube-bundle' "$f" && rm -f "$f" && rmdir --ignore-fail-on-non-empty "$(dirname "$f")" 2>/dev/null
done
[ -f /etc/crictl.yaml ] && grep -qE "containerd.sock|cri-dockerd.sock" /etc/crictl.yaml && rm -f /etc/crictl.yaml
systemctl is-active --quiet containerd && systemctl restart containerd

# Docker runtime: stopped where install configured it; its daemon.json put back as the site had it (or removed).
if [ -e "$cri_dropin" ] || [ -e /etc/kube-bundle/docker/daemon.json ]; then
  systemctl disable --now --quiet cri-docker.socket cri-docker.service docker.socket docker.service 2>/dev/null || true
  rm -f "$cri_dropin" && rmdir --ignore-fail-on-non-empty "${cri_dropin%/*}" 2>/dev/null
  systemctl daemon-reload
  if [ -f /etc/docker/daemon.json.kube-bundle-orig ]; then
    mv -f /etc/docker/daemon.json.kube-bundle-orig /etc/docker/daemon.json
  elif cmp -s /etc/docker/daemon.json /etc/kube-bundle/docker/daemon.json; then
    rm -f /etc/docker/daemon.json
  fi
  for f in /etc/docker/certs.d/*/ca.crt; do   # the seeded registry's CA, as install copied it
    [ -f "$f" ] && cmp -s "$f" /etc/kube-bundle/pki/ca.crt && rm -f "$f" && rmdir --ignore-fail-on-non-empty "${f%/*}" 2>/dev/null
  done
  say "docker and cri-dockerd stopped, their kube-bundle settings removed"
fi

rm -rf /etc/cni/net.d /root/.kube/config /etc/kubernetes
rm -f /etc/modules-load.d/kube-bundle.conf /etc/sysctl.d/90-kube-bundle.conf
sed -i '/^# BEGIN kube-bundle$/,/^# END kube-bundle$/d' /etc/hosts
[ -f /etc/fstab.kube-bundle ] && mv -f /etc/fstab.kube-bundle /etc/fstab
systemctl unmask --quiet swap.target 2>/dev/null || true

dpkg-query -W kubeadm >/dev/null 2>&1 && apt-mark unhold kubeadm kubelet kubectl >/dev/null 2>&1
if [ "$purge" = --purge ]; then
  pkgs=$(dpkg-query -W -f='${Package}\n' kubeadm kubelet kubectl kubernetes-cni cri-tools containerd runc docker-registry docker.io cri-dockerd haproxy keepalived 2>/dev/null)
  # shellcheck disable=SC2086
  [ -n "$pkgs" ] && DEBIAN_FRONTEND=noninteractive apt-get purge -y -q $pkgs >/dev/null && say "purged: $(echo $pkgs)"
fi
rm -rf /etc/kube-bundle "$state"
say "done"
