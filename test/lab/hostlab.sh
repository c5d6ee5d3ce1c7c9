#!/usr/bin/env bash
# hostlab: N throw-away Debian 12 "hosts" (systemd-nspawn --boot, real systemd + sshd) for SSH install tests.
# Every host gets its own netns + IP ($NET.11, .12, ...) on bridge br0 inside a private netns "hl-lab";
# the real host's netns, /etc, services and sysctls are never touched. Run the test runner INSIDE hl-lab:
#   sudo ./hostlab.sh deps && sudo ./hostlab.sh base && sudo ./hostlab.sh up 3
#   sudo ./hostlab.sh exec npm test      # == ip netns exec hl-lab npm test; hosts in $LAB/hosts.txt, key $LAB/keys/id_ed25519
#   sudo ./hostlab.sh ssh 1 systemctl is-system-running
#   sudo ./hostlab.sh down               # stops hosts, removes overlays/netns/cgroups; keeps the cached base rootfs
#   sudo ./hostlab.sh clean              # down + delete the cached base rootfs and the lab ssh key
set -euo pipefail
LAB=${LAB:-/var/tmp/kube-bundle-lab}; NET=${NET:-10.77.0}; LABNS=hl-lab
BASE=$LAB/base/rootfs; KEY=$LAB/keys/id_ed25519
MIRROR=${MIRROR:-$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}
[ -n "$MIRROR" ] || { echo "hostlab: set MIRROR to a Debian archive URL (none found in the apt sources)" >&2; exit 2; }
SSHO=(-i "$KEY" -o UserKnownHostsFile="$LAB/known_hosts" -o StrictHostKeyChecking=yes -o BatchMode=yes -o ConnectTimeout=2)
ip_of() { echo "$NET.$((10 + $1))"; }
cg_roots() {  # cgroup hierarchies systemd uses: hybrid (this VM) = name=systemd + unified; pure v2 = /sys/fs/cgroup
  if [ -e /sys/fs/cgroup/cgroup.controllers ]; then echo /sys/fs/cgroup; else
    for c in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified; do [ -d "$c" ] && echo "$c"; done; fi; }

deps() {  # host tools only; openssh-server/containerd/registry are NOT installed on the host
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends --no-upgrade \
    systemd-container debootstrap iproute2 openssh-client skopeo minisign curl ca-certificates
}

base() {
  [ -e "$BASE/etc/os-release" ] && { echo "base rootfs already at $BASE"; return; }
  mkdir -p "$LAB/keys" "${BASE%/*}"
  [ -f "$KEY" ] || ssh-keygen -q -t ed25519 -N '' -C hostlab -f "$KEY"
  debootstrap --variant=minbase \
    --include=systemd,systemd-sysv,dbus,openssh-server,iproute2,ca-certificates,procps,kmod \
    bookworm "$BASE" "$MIRROR"
  rm -f "$BASE"/etc/ssh/ssh_host_*                                   # per-host keys are made in `up`
  install -d -m700 "$BASE/root/.ssh"; install -m600 "$KEY.pub" "$BASE/root/.ssh/authorized_keys"
  printf '%s\n' 'PermitRootLogin prohibit-password' 'PasswordAuthentication no' 'UseDNS no' \
    'HostKey /etc/ssh/ssh_host_ed25519_key' > "$BASE/etc/ssh/sshd_config.d/hostlab.conf"
  : > "$BASE/etc/machine-id"; ln -sf /etc/machine-id "$BASE/var/lib/dbus/machine-id"  # unique id from --uuid
  rm -f "$BASE"/etc/systemd/system/timers.target.wants/* "$BASE"/etc/systemd/system/getty.target.wants/*
  # kernel.pid_max / fs.protected_* are read-only in a container and would make `sysctl --system` exit 1
  ln -sf /dev/null "$BASE/etc/sysctl.d/50-pid-max.conf"; ln -sf /dev/null "$BASE/etc/sysctl.d/99-protect-links.conf"
  echo '# hostlab: no DNS, lab names are in /etc/hosts' > "$BASE/etc/resolv.conf"   # not the CI host's resolver
  chroot "$BASE" apt-get clean; rm -rf "$BASE"/var/lib/apt/lists/*
}

fake_modules() {  # this kernel has CONFIG_MODULES unset (br_netfilter, overlay... are built in), so
  local k; k=$(uname -r); local d="$BASE/lib/modules/$k"   # list them in modules.builtin: `modprobe X` then exits 0
  [ -e "$d/modules.builtin.bin" ] && return
  [ -e /proc/sys/net/bridge/bridge-nf-call-iptables ] || echo "WARN: br_netfilter not active in host kernel" >&2
  mkdir -p "$d"; printf 'kernel/%s.ko\n' net/bridge/bridge net/bridge/br_netfilter fs/overlayfs/overlay \
    net/netfilter/nf_conntrack drivers/net/veth net/ipv4/netfilter/ip_tables > "$d/modules.builtin"
  chroot "$BASE" depmod "$k" 2>/dev/null
}

up() {
  local n=${1:-3} i h d ip c
  [ -e "/run/netns/$LABNS" ] && { echo "lab is already up: run '$0 down' first" >&2; exit 1; }
  [ -e "$BASE/etc/os-release" ] || base
  fake_modules
  ip netns add $LABNS; ip -n $LABNS link set lo up
  ip -n $LABNS link add br0 type bridge; ip -n $LABNS addr add "$NET.1/24" dev br0; ip -n $LABNS link set br0 up
  : > "$LAB/hosts.txt"; : > "$LAB/known_hosts"
  for i in $(seq 1 "$n"); do
    h=h$i; d=$LAB/hosts/$h; ip=$(ip_of "$i")
    mkdir -p "$d/upper" "$d/work" "$d/merged" "$d/containerd"
    mount -t overlay overlay -o "lowerdir=$BASE,upperdir=$d/upper,workdir=$d/work" "$d/merged"
    ssh-keygen -q -t ed25519 -N '' -C "$h" -f "$d/merged/etc/ssh/ssh_host_ed25519_key" <<< y >/dev/null
    echo "$h" > "$d/merged/etc/hostname"
    { echo "127.0.0.1 localhost"; for j in $(seq 1 "$n"); do echo "$(ip_of "$j") h$j"; done; } > "$d/merged/etc/hosts"
    ip netns add "hl-$h"; ip -n "hl-$h" link set lo up      # veth created directly inside the two namespaces
    ip link add "$h" netns $LABNS type veth peer name eth0 netns "hl-$h"
    ip -n $LABNS link set "$h" master br0 up
    ip -n "hl-$h" addr add "$ip/24" dev eth0; ip -n "hl-$h" link set eth0 up; ip -n "hl-$h" route add default via "$NET.1"
    for c in $(cg_roots); do mkdir -p "$c/hostlab/$h"; done  # own cgroup per host, else all share /payload
    args=(--boot --directory="$d/merged" --machine="$h" --uuid="$(printf '00000000-0000-4000-8000-%012d' "$i")"
      --network-namespace-path="/run/netns/hl-$h" --capability=CAP_NET_ADMIN,CAP_BPF --system-call-filter='@keyring bpf'
      --bind="$d/containerd:/var/lib/containerd" --resolv-conf=off --register=no --keep-unit --console=read-only)
    # API_VFS_WRITABLE=network: /proc/sys/net rw (per-netns sysctls); UNIFIED: cgroup v2 inside, like a real Debian 12;
    # @keyring+bpf+CAP_BPF: needed by runc (`ctr run`). `reboot` inside makes nspawn exit 133 -> loop restarts it.
    CG="$(cg_roots)" H=$h D=$d SYSTEMD_NSPAWN_API_VFS_WRITABLE=network SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 \
      setsid bash -c 'for c in $CG; do echo $$ > "$c/hostlab/$H/cgroup.procs"; done
        while systemd-nspawn "$@"; [ $? = 133 ] && [ ! -e "$D/stop" ]; do :; done' hostlab "${args[@]}" \
      </dev/null >>"$d/console.log" 2>&1 &
    echo $! > "$d/pid"; echo "$ip" >> "$LAB/hosts.txt"
    echo "$ip $(cut -d' ' -f1,2 "$d/merged/etc/ssh/ssh_host_ed25519_key.pub")" >> "$LAB/known_hosts"
  done
  for i in $(seq 1 "$n"); do  # wait for sshd
    for _ in $(seq 150); do ip netns exec $LABNS ssh "${SSHO[@]}" "root@$(ip_of "$i")" true 2>/dev/null && break; sleep 0.2; done
    ip netns exec $LABNS ssh "${SSHO[@]}" "root@$(ip_of "$i")" true || { echo "h$i: no ssh, see $LAB/hosts/h$i/console.log" >&2; exit 1; }
  done
  echo "up: $(tr '\n' ' ' < "$LAB/hosts.txt")"
}

down() {
  local d h p n c
  ours() { tr '\0' ' ' < "/proc/$1/cmdline" 2>/dev/null | grep -qF -- "--directory=$LAB/hosts/$2/merged"; }
  for d in "$LAB"/hosts/*/; do  # SIGTERM to nspawn = SIGRTMIN+3 to the host's systemd = clean halt (~1 s)
    [ -d "$d" ] || continue; h=$(basename "$d"); touch "$d/stop"; p=$(cat "$d/pid" 2>/dev/null) || continue
    ours "$p" "$h" && for n in $(pgrep -P "$p" -x systemd-nspawn); do kill -TERM "$n"; done; done
  for d in "$LAB"/hosts/*/; do
    [ -d "$d" ] || continue; h=$(basename "$d"); p=$(cat "$d/pid" 2>/dev/null || echo none)
    for _ in $(seq 150); do ours "$p" "$h" || break; sleep 0.1; done
    if ours "$p" "$h"; then for n in $(pgrep -P "$p"); do kill -KILL $(pgrep -P "$n") "$n"; done; kill -KILL "$p"; sleep 0.5; fi
    if mountpoint -q "$d/merged"; then  # a killed nspawn leaves its lock + propagate dir in /run (on disk here)
      rm -f "/run/systemd/nspawn/locks/inode-$(stat -c %d:%i "$d/merged")"; umount "$d/merged"; fi
    rm -rf "/run/systemd/nspawn/propagate/$h"
    ip netns del "hl-$h" 2>/dev/null || true
    rm -rf "$d"
  done
  ip netns del $LABNS 2>/dev/null || true
  for c in $(cg_roots); do [ -d "$c/hostlab" ] && find "$c/hostlab" -depth -type d -exec rmdir {} \; ; done
  rmdir /run/systemd/nspawn/propagate /run/systemd/nspawn/locks /run/systemd/nspawn 2>/dev/null || true
  rm -f "$LAB/hosts.txt" "$LAB/known_hosts"
}

case ${1:-} in
  deps|base|down) "$1" ;;
  up)    up "${2:-3}" ;;
  ssh)   i=$2; shift 2; exec ip netns exec $LABNS ssh "${SSHO[@]}" "root@$(ip_of "$i")" "$@" ;;
  exec)  shift; exec ip netns exec $LABNS "$@" ;;
  clean) down; rm -rf "$LAB/base" "$LAB/keys" ;;
  *) sed -n '2,9p' "$0"; exit 2 ;;
esac
