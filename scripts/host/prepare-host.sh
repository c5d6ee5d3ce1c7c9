#!/bin/bash
# Prepare a host for kubeadm: hostname, /etc/hosts, swap off for good, kernel modules, sysctls.
#   prepare-host.sh <hostname> <file with the /etc/hosts lines for every node>
# Idempotent: files are rewritten whole, the /etc/hosts block is replaced between its markers.
set -euo pipefail
name=$1 hosts_block=$2

if [ "$(cat /etc/hostname 2>/dev/null)" != "$name" ] || [ "$(hostname)" != "$name" ]; then
  echo "$name" > /etc/hostname
  hostname "$name"
fi

begin='# BEGIN kube-bundle' end='# END kube-bundle'
{ sed "/^$begin\$/,/^$end\$/d" /etc/hosts; echo "$begin"; cat "$hosts_block"; echo "$end"; } > /etc/hosts.kube-bundle
cat /etc/hosts.kube-bundle > /etc/hosts && rm -f /etc/hosts.kube-bundle   # keep the inode: /etc/hosts may be bind-mounted

# kubelet refuses to run with swap on: off now, and no swap line or unit at boot.
swapoff -a
if grep -qE '^[^#].*[[:space:]]swap[[:space:]]' /etc/fstab 2>/dev/null; then
  sed -i.kube-bundle -E 's/^([^#].*[[:space:]]swap[[:space:]].*)$/# disabled by kube-bundle: \1/' /etc/fstab
fi
systemctl mask --quiet swap.target

printf '%s\n' overlay br_netfilter > /etc/modules-load.d/kube-bundle.conf
modprobe overlay
modprobe br_netfilter

cat > /etc/sysctl.d/90-kube-bundle.conf <<'SYSCTL'
net.bridge.bridge-nf-call-iptables = 1
net.bridge.bridge-nf-call-ip6tables = 1
net.ipv4.ip_forward = 1
SYSCTL
sysctl --quiet --load=/etc/sysctl.d/90-kube-bundle.conf
[ "$(sysctl -n net.ipv4.ip_forward)" = 1 ] || { echo "prepare-host: net.ipv4.ip_forward did not stay at 1" >&2; exit 1; }
