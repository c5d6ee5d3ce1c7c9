#!/bin/bash
# Undo what `bundle install` did on this host, so that it can be installed again.
#   reset-host.sh [--purge]      (run as root; --purge also removes the packages install added)
# Only files install wrote are removed: each is recognised by its "Written by kube-bundle" line or its path.
#
# Resumable: cut at any line (a lost SSH session), the next run completes it. Every step checks its own target and
# does nothing when it is already gone; the markers later steps recognise install's files by (/etc/kube-bundle,
# /var/lib/kube-bundle) are removed last, and only when every step succeeded. A step that fails is named, the
# others still run, and the script exits 1 naming every failed step.
set -uo pipefail   # no -e here: each step runs under its own -e (see step), one failing does not stop the rest
purge=${1:-}
state=${KB_ROOT:?set by bundle reset} etc=${KB_ETC:?set by bundle reset}
marker='Written by kube-bundle'
cri_dropin=/etc/systemd/system/cri-docker.service.d/kube-bundle.conf
registry_name=${KB_REGISTRY_UNIT:?set by bundle reset} registry_unit=/etc/systemd/system/${KB_REGISTRY_UNIT}
failed=()
say() { echo "reset: $*"; }

# A reset cut by a lost SSH session may still be going: wait for it rather than interleave with it.
exec 9>/run/kube-bundle-reset.lock
flock -w 600 9 || { echo "reset: another reset-host.sh still runs after 600s" >&2; exit 1; }

# step NAME FUNCTION: run one step with -e (in a subshell, called as a plain command so that -e holds) and stdin
# closed (this script itself may be arriving on stdin); a failure is reported, counted, and the next step runs.
step() {
  local name=$1 rc
  shift
  (set -e; "$@") </dev/null
  rc=$?
  [ "$rc" -eq 0 ] || { failed+=("$name"); echo "reset: FAILED: $name (exit $rc)" >&2; }
}

unit_exists() { systemctl cat "$1" >/dev/null 2>&1; }
# stop_units UNIT...: stop and disable those of the units that exist (a unit that is gone is already stopped)
stop_units() {
  local units=() u
  for u in "$@"; do unit_exists "$u" && units+=("$u"); done
  [ ${#units[@]} -eq 0 ] || systemctl disable --now --quiet "${units[@]}"
}
# A Docker node: known by install's files, which stay until the very end (a cut run may have removed the drop-in).
docker_node() { [ -e "$cri_dropin" ] || [ -e "$etc/docker/daemon.json" ]; }

kubeadm_reset() {
  command -v kubeadm >/dev/null || return 0
  local left=() f
  for f in /etc/kubernetes/{admin,super-admin,kubelet,bootstrap-kubelet}.conf /var/lib/kubelet/config.yaml; do [ -e "$f" ] && left+=("$f"); done
  for f in /etc/kubernetes/manifests /etc/kubernetes/pki /var/lib/etcd; do [ -n "$(ls -A "$f" 2>/dev/null)" ] && left+=("$f"); done
  [ ${#left[@]} -gt 0 ] || return 0   # nothing kubeadm made is left: done by an earlier run, or never there
  # On a Docker node containerd's socket is there too: kubeadm must be told which runtime the node used.
  local cri_socket=()
  docker_node && cri_socket=(--cri-socket unix:///var/run/cri-dockerd.sock)
  local out
  out=$(kubeadm reset -f "${cri_socket[@]}" 2>&1) || { echo "$out" | tail -n 5 >&2; return 1; }
  say "kubeadm reset done"
}

stop_kubelet() { stop_units kubelet.service; }

remove_registry() {
  if [ -e "$registry_unit" ]; then
    systemctl disable --now --quiet "$registry_name"
    rm -f "$registry_unit"
    systemctl daemon-reload
    say "registry removed"
  elif systemctl is-active --quiet "$registry_name"; then
    systemctl stop "$registry_name"   # its unit file went in a cut run: still loaded in systemd
  fi
}

# unconfigure SERVICE CONFIG: stop, disable and unconfigure SERVICE if install configured it, putting back the
# distribution's config that setup-lb.sh set aside (a rename: cut anywhere, either ours or theirs is in place).
unconfigure() {
  local service=$1 conf=$2 orig=$2.kube-bundle-orig
  rm -f "$conf.kube-bundle-new"
  if [ -f "$conf" ] && grep -q "$marker" "$conf"; then
    stop_units "$service.service"
    if [ -f "$orig" ]; then mv -f "$orig" "$conf"; else rm -f "$conf"; fi
    say "$service stopped, its config removed"
  elif [ ! -e "$conf" ] && [ -f "$orig" ]; then
    mv -f "$orig" "$conf"   # setup-lb.sh was cut between setting it aside and writing ours
  fi
}
# The control-plane address (--vip): keepalived first, so the address is given up before haproxy stops.
unconfigure_keepalived() { unconfigure keepalived /etc/keepalived/keepalived.conf; }
unconfigure_haproxy() { unconfigure haproxy /etc/haproxy/haproxy.cfg; }

unconfigure_containerd() {
  local f
  for f in /etc/containerd/certs.d/*/hosts.toml /etc/containerd/config.toml; do
    if [ -f "$f" ] && grep -q "$marker" "$f"; then rm -f "$f"; fi
    rmdir --ignore-fail-on-non-empty "${f%/*}" 2>/dev/null || true
  done
  if [ -f /etc/crictl.yaml ] && grep -qE "containerd.sock|cri-dockerd.sock" /etc/crictl.yaml; then rm -f /etc/crictl.yaml; fi
  if systemctl is-active --quiet containerd; then systemctl restart containerd; fi
}

# Docker runtime: stopped where install configured it; its daemon.json put back as the site had it (or removed).
unconfigure_docker() {
  docker_node || return 0
  stop_units cri-docker.socket cri-docker.service docker.socket docker.service
  if [ -e "$cri_dropin" ]; then
    rm -f "$cri_dropin"
    rmdir --ignore-fail-on-non-empty "${cri_dropin%/*}" 2>/dev/null || true
    systemctl daemon-reload
  fi
  if [ -f /etc/docker/daemon.json.kube-bundle-orig ]; then
    mv -f /etc/docker/daemon.json.kube-bundle-orig /etc/docker/daemon.json
  elif [ -f /etc/docker/daemon.json ] && cmp -s /etc/docker/daemon.json "$etc/docker/daemon.json"; then
    rm -f /etc/docker/daemon.json
  fi
  local f
  for f in /etc/docker/certs.d/*/ca.crt; do   # the seeded registry's CA, as install copied it
    if [ -f "$f" ] && cmp -s "$f" "$etc/pki/ca.crt"; then rm -f "$f"; fi
    rmdir --ignore-fail-on-non-empty "${f%/*}" 2>/dev/null || true
  done
  say "docker and cri-dockerd stopped, their kube-bundle settings removed"
}

remove_host_settings() {
  rm -rf /etc/cni/net.d /root/.kube/config /etc/kubernetes
  rm -f /etc/modules-load.d/kube-bundle.conf /etc/sysctl.d/90-kube-bundle.conf
  # /etc/hosts may be bind-mounted (no rename over it): the new content is made whole first, then copied in; a
  # copy cut half-way is done again from it by the next run
  local begin='# BEGIN kube-bundle' end='# END kube-bundle' hosts_new=/etc/hosts.kube-bundle-reset
  if [ ! -e "$hosts_new" ] && grep -qx "$begin" /etc/hosts; then
    sed "/^$begin\$/,/^$end\$/d" /etc/hosts > "$hosts_new.tmp"
    mv -f "$hosts_new.tmp" "$hosts_new"
  fi
  if [ -e "$hosts_new" ]; then cat "$hosts_new" > /etc/hosts; rm -f "$hosts_new"; fi
  rm -f /etc/hosts.kube-bundle /etc/hosts.kube-bundle-reset.tmp
  if [ -f /etc/fstab.kube-bundle ]; then mv -f /etc/fstab.kube-bundle /etc/fstab; fi
  systemctl unmask --quiet swap.target
}

unhold_packages() {
  local held=() p
  for p in kubeadm kubelet kubectl; do dpkg-query -W "$p" >/dev/null 2>&1 && held+=("$p"); done
  [ ${#held[@]} -eq 0 ] || apt-mark unhold "${held[@]}" >/dev/null
}

purge_packages() {
  local pkgs
  pkgs=$(dpkg-query -W -f='${Package}\n' kubeadm kubelet kubectl kubernetes-cni cri-tools containerd runc docker-registry docker.io cri-dockerd haproxy keepalived 2>/dev/null || true)
  [ -n "$pkgs" ] || return 0
  export DEBIAN_FRONTEND=noninteractive
  dpkg --configure -a >/dev/null   # a purge cut half-way leaves dpkg "interrupted": finish it first
  # shellcheck disable=SC2086
  apt-get purge -y -q $pkgs >/dev/null
  say "purged: ${pkgs//$'\n'/ }"
}

step "kubeadm reset" kubeadm_reset
step "stop kubelet" stop_kubelet
step "remove the registry" remove_registry
step "unconfigure keepalived" unconfigure_keepalived
step "unconfigure haproxy" unconfigure_haproxy
step "remove containerd's kube-bundle config" unconfigure_containerd
step "unconfigure docker and cri-dockerd" unconfigure_docker
step "remove host settings" remove_host_settings
step "unhold the kube packages" unhold_packages
[ "$purge" = --purge ] && step "purge the packages" purge_packages

if [ ${#failed[@]} -gt 0 ]; then
  # install's own files stay, so that the next reset still recognises what is left to undo
  list=$(IFS=,; echo "${failed[*]}")
  echo "reset: not finished, these steps failed: ${list//,/, }; run reset again once fixed" >&2
  exit 1
fi
rm -rf "$etc" "$state" || { echo "reset: FAILED: remove $etc and $state" >&2; exit 1; }
say "done"
