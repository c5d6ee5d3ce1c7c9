#!/bin/bash
# Undo what `bundle install` did on this host, so that it can be installed again.
#   reset-host.sh [--purge]      (run as root; --purge also removes the packages install added)
# Only files install wrote are removed: each is recognised by its "Written by kube-bundle" line or its path.
set -uo pipefail
purge=${1:-}
state=/var/lib/kube-bundle
say() { echo "reset: $*"; }

if command -v kubeadm >/dev/null; then
  kubeadm reset -f >/dev/null 2>&1 && say "kubeadm reset done" || say "kubeadm reset reported an error (continuing)"
fi
systemctl disable --now --quiet kubelet 2>/dev/null || true
if [ -e /etc/systemd/system/kube-bundle-registry.service ]; then
  systemctl disable --now --quiet kube-bundle-registry.service
  rm -f /etc/systemd/system/kube-bundle-registry.service
  systemctl daemon-reload
  say "registry removed"
fi

for f in /etc/containerd/certs.d/*/hosts.toml /etc/containerd/config.toml; do
  [ -f "$f" ] && grep -q 'Written by kube-bundle' "$f" && rm -f "$f" && rmdir --ignore-fail-on-non-empty "$(dirname "$f")" 2>/dev/null
done
[ -f /etc/crictl.yaml ] && grep -q "containerd.sock" /etc/crictl.yaml && rm -f /etc/crictl.yaml
systemctl is-active --quiet containerd && systemctl restart containerd

rm -rf /etc/cni/net.d /root/.kube/config /etc/kubernetes
rm -f /etc/modules-load.d/kube-bundle.conf /etc/sysctl.d/90-kube-bundle.conf
sed -i '/^# BEGIN kube-bundle$/,/^# END kube-bundle$/d' /etc/hosts
[ -f /etc/fstab.kube-bundle ] && mv -f /etc/fstab.kube-bundle /etc/fstab
systemctl unmask --quiet swap.target 2>/dev/null || true

dpkg-query -W kubeadm >/dev/null 2>&1 && apt-mark unhold kubeadm kubelet kubectl >/dev/null 2>&1
if [ "$purge" = --purge ]; then
  pkgs=$(dpkg-query -W -f='${Package}\n' kubeadm kubelet kubectl kubernetes-cni cri-tools containerd runc docker-registry docker.io cri-dockerd 2>/dev/null)
  # shellcheck disable=SC2086
  [ -n "$pkgs" ] && DEBIAN_FRONTEND=noninteractive apt-get purge -y -q $pkgs >/dev/null && say "purged: $(echo $pkgs)"
fi
rm -rf /etc/kube-bundle "$state"
say "done"
