#!/usr/bin/env bash
# hostlab: N throw-away Debian "hosts" (12 bookworm by default, SUITE=trixie for 13; systemd-nspawn --boot, real systemd +
# sshd) for SSH install tests. Use another LAB directory per SUITE: the base rootfs is cached there.
# Every host hN gets its own netns hl-hN and IP ($NET.11, .12, ...) on bridge br0 ($NET.1) inside a private netns
# "hl-lab"; hosts have no route out. The real host's netns, /etc, services and sysctls are never touched.
# The test runner stays in the root netns; whatever must reach the hosts runs inside hl-lab via `exec`/`ssh`:
#   sudo ./hostlab.sh deps && sudo ./hostlab.sh base && sudo ./hostlab.sh up 3   # up clears a crashed run's leftovers
#   sudo ./hostlab.sh exec curl http://10.77.0.11:22   # == ip netns exec hl-lab ...; hosts in $LAB/hosts.txt, key $LAB/keys/id_ed25519
#   sudo ./hostlab.sh ssh 1 systemctl is-system-running
#   sudo ./hostlab.sh status              # exit 0 all hosts running, 1 broken/partial lab, 3 no lab
#   sudo ./hostlab.sh down                # stops hosts, removes overlays/netns/cgroups/processes; keeps the cached base rootfs
#   sudo ./hostlab.sh clean               # down + delete the cached base rootfs and the lab ssh key
# Env: LAB (state dir, default /var/tmp/kube-bundle-lab), NET (first three octets, default 10.77.0), NET2 (a second NIC
# per host on it, see ip2_of), DEFAULT_ROUTE (0: none), SUITE (bookworm or
# trixie, default bookworm), MIRROR (Debian archive for `base`, default: the one in the apt sources). One lab per
# machine (fixed netns names, whatever the LAB): up/down/base/clean hold the flock $LOCK; a caller keeping the lab
# across verbs (test/lab/lab.ts) passes its own locked fd of $LOCK as fd 9.
# Inside a host (checked on this VM, kernel built without loadable modules): `modprobe` of br_netfilter, overlay,
# nf_conntrack, veth, ip_tables, bridge exits 0 (listed as built-in), any other module fails and lsmod errors out (no
# /proc/modules); only net.* sysctls are writable (per netns), kernel.*/vm.*/fs.* give "permission denied" (so
# `sysctl --system` needs the masks in `base`); the VM has no swap: `swapoff -a` is a no-op that exits 0, swapon fails.
set -euo pipefail
PATH=/usr/local/sbin:/usr/sbin:/sbin:$PATH  # ip, debootstrap, chroot when run from a non-login environment
LAB=${LAB:-/var/tmp/kube-bundle-lab}; NET=${NET:-10.77.0}; SUITE=${SUITE:-bookworm}; LABNS=hl-lab
NET2=${NET2:-}; DEFAULT_ROUTE=${DEFAULT_ROUTE:-1}
BASE=$LAB/base/rootfs; KEY=$LAB/keys/id_ed25519
LOCK=/run/lock/hostlab.lock  # machine-wide, like the netns names
CG=hostlab                   # cgroup, in every hierarchy systemd uses, holding every lab process (hosts + `exec`)
SSHO=(-i "$KEY" -o UserKnownHostsFile="$LAB/known_hosts" -o StrictHostKeyChecking=yes -o BatchMode=yes -o ConnectTimeout=2)
die() { echo "hostlab: $*" >&2; exit 1; }
[[ $NET =~ ^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]] || die "NET must be three octets like 10.77.0, got '$NET'"
[ -z "$NET2" ] || [[ $NET2 =~ ^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ && $NET2 != "$NET" ]] || die "NET2 must be three octets other than NET's, got '$NET2'"
[[ $SUITE =~ ^[a-z]+$ ]] || die "SUITE must be a Debian codename like bookworm or trixie, got '$SUITE'"
ip_of() { echo "$NET.$((10 + $1))"; }
# Network shapes of real sites: NET2 (three octets) gives every host a second NIC, eth1 = $NET2.(10+i) on bridge br1
# (a cluster network beside the management one); DEFAULT_ROUTE=0 leaves the hosts without any default route.
ip2_of() { echo "$NET2.$((10 + $1))"; }

lock() {  # fd 9 already open on $LOCK = inherited from a caller that holds it; same open file, so flock succeeds
  if [ /proc/$$/fd/9 -ef "$LOCK" ]; then flock -n 9 || die "fd 9 is $LOCK but not locked by the caller"; return; fi
  mkdir -p "${LOCK%/*}"; exec 9>>"$LOCK"
  flock -n 9 || die "the lab is in use: $LOCK is held by $(head -c 200 "$LOCK") - wait for it, or stop that process"
  echo "pid $$ (hostlab.sh $*)" > "$LOCK"  # names the holder in the message above
}

cg_roots() {  # cgroup hierarchies systemd uses: hybrid (this VM) = name=systemd + unified; pure v2 = /sys/fs/cgroup
  if [ -e /sys/fs/cgroup/cgroup.controllers ]; then echo /sys/fs/cgroup; else
    for c in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified; do [ -d "$c" ] && echo "$c"; done; fi; }
cg_join() {  # cg_join SUB PID: move PID into $CG/SUB in every hierarchy, so `down` finds it and its children
  local c; for c in $(cg_roots); do mkdir -p "$c/$CG/$1"; echo "$2" > "$c/$CG/$1/cgroup.procs"; done; }
# cg_pids [SUB]: pids in $CG/SUB and below (an exiting process, zombie or not, leaves its cgroup at once). Never fails:
cg_pids() {  # cgroup dirs vanish under find while hosts halt
  local c; for c in $(cg_roots); do
    [ ! -d "$c/$CG/${1:-}" ] || find "$c/$CG/${1:-}" -name cgroup.procs -exec cat {} + 2>/dev/null || true
  done | sort -un; }
nspawn_pids() { local p; for p in $(cg_pids "$@"); do [ "$(cat "/proc/$p/comm" 2>/dev/null)" = systemd-nspawn ] && echo "$p"; done; true; }
until_gone() {  # until_gone TRIES CMD...: poll every 0.1 s until CMD prints nothing; fail after TRIES
  local i; for ((i = 0; i < $1; i++)); do [ -z "$("${@:2}")" ] && return 0; sleep 0.1; done; return 1; }
lab_mounts() { findmnt -rn -o TARGET | awk -v p="$LAB/hosts/" 'index($0, p) == 1' | sort -r; }
lab_netns() { ip netns list | awk '$1 ~ /^hl-/ {print $1}'; }

leftovers() {  # everything `down` removes; empty output = no lab on this machine
  lab_netns | sed 's/^/netns /'
  lab_mounts | sed 's/^/mount /'
  local c; for c in $(cg_roots); do [ -d "$c/$CG" ] && echo "cgroup $c/$CG"; done
  [ -d "$LAB/hosts" ] && echo "dir $LAB/hosts"
  nspawn_pids | sed 's/^/systemd-nspawn pid /'
}

deps() {  # host tools only, and only the missing ones; openssh-server/containerd/registry are NOT installed on the host
  local -A pkg_of=([systemd-nspawn]=systemd-container [debootstrap]=debootstrap [ip]=iproute2 [ssh]=openssh-client
    [scp]=openssh-client [ssh-keygen]=openssh-client [skopeo]=skopeo [minisign]=minisign [curl]=curl [flock]=util-linux)
  local t missing=()
  for t in "${!pkg_of[@]}"; do command -v "$t" >/dev/null || missing+=("${pkg_of[$t]}"); done
  [ -e /etc/ssl/certs/ca-certificates.crt ] || missing+=(ca-certificates)
  [ ${#missing[@]} = 0 ] && { echo "deps: all host tools present"; return; }
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  echo "deps: installing ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends --no-upgrade "${missing[@]}"
}

base_suite() { sed -n 's/^VERSION_CODENAME=//p' "$BASE/etc/os-release"; }

base() {  # built in rootfs.partial and renamed at the end, so an interrupted build is never taken for a cache
  if [ -e "$BASE/etc/os-release" ]; then  # a cached base of another suite is never booted as this one
    [ "$(base_suite)" = "$SUITE" ] || die "$BASE is $(base_suite), not $SUITE: use another LAB directory per SUITE"
    echo "base rootfs ($SUITE) already at $BASE"; return
  fi
  local mirror b=$BASE.partial
  mirror=${MIRROR:-$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}
  [ -n "$mirror" ] || die "set MIRROR to a Debian archive URL (none found in /etc/apt/sources.list.d/debian.sources)"
  mkdir -p "$LAB/keys" "${BASE%/*}"; rm -rf "$b" "$BASE"
  [ -f "$KEY" ] || ssh-keygen -q -t ed25519 -N '' -C hostlab -f "$KEY"
  debootstrap --variant=minbase \
    --include=systemd,systemd-sysv,dbus,openssh-server,iproute2,ca-certificates,procps,kmod \
    "$SUITE" "$b" "$mirror"
  rm -f "$b"/etc/ssh/ssh_host_*                                      # per-host keys are made in `up`
  install -d -m700 "$b/root/.ssh"; install -m600 "$KEY.pub" "$b/root/.ssh/authorized_keys"
  printf '%s\n' 'PermitRootLogin prohibit-password' 'PasswordAuthentication no' 'UseDNS no' \
    'HostKey /etc/ssh/ssh_host_ed25519_key' > "$b/etc/ssh/sshd_config.d/hostlab.conf"
  : > "$b/etc/machine-id"; ln -sf /etc/machine-id "$b/var/lib/dbus/machine-id"  # unique id from --uuid
  rm -f "$b"/etc/systemd/system/timers.target.wants/* "$b"/etc/systemd/system/getty.target.wants/*
  # kernel.pid_max / fs.protected_* (and trixie's kernel.core_pattern) are read-only in a container and would make
  # `sysctl --system` exit 1; a mask of a file the suite does not ship is harmless
  local f; for f in 50-pid-max 99-protect-links 10-coredump-debian; do ln -sf /dev/null "$b/etc/sysctl.d/$f.conf"; done
  echo '# hostlab: no DNS, lab names are in /etc/hosts' > "$b/etc/resolv.conf"   # not the CI host's resolver
  chroot "$b" apt-get clean; rm -rf "$b"/var/lib/apt/lists/*
  mv "$b" "$BASE"
}

fake_modules() {  # this kernel has CONFIG_MODULES unset (br_netfilter, overlay... are built in), so
  local k; k=$(uname -r); local d="$BASE/lib/modules/$k"   # list them in modules.builtin: `modprobe X` then exits 0
  [ -e "$d/modules.builtin.bin" ] && return
  [ -e /proc/sys/net/bridge/bridge-nf-call-iptables ] || echo "WARN: br_netfilter not active in host kernel" >&2
  mkdir -p "$d"; printf 'kernel/%s.ko\n' net/bridge/bridge net/bridge/br_netfilter fs/overlayfs/overlay \
    net/netfilter/nf_conntrack drivers/net/veth net/ipv4/netfilter/ip_tables > "$d/modules.builtin"
  chroot "$BASE" depmod "$k" 2>/dev/null
}

start_host() {  # start_host I N: overlay rootfs, netns + veth on br0, booted nspawn in its own cgroup
  local i=$1 n=$2 h=h$1 d=$LAB/hosts/h$1 ip j; ip=$(ip_of "$i")
  mkdir -p "$d/upper" "$d/work" "$d/merged" "$d/containerd"; echo "$ip" > "$d/ip"
  mount -t overlay overlay -o "lowerdir=$BASE,upperdir=$d/upper,workdir=$d/work" "$d/merged"
  ssh-keygen -q -t ed25519 -N '' -C "$h" -f "$d/merged/etc/ssh/ssh_host_ed25519_key" <<< y >/dev/null
  echo "$h" > "$d/merged/etc/hostname"
  { echo "127.0.0.1 localhost"; for j in $(seq 1 "$n"); do echo "$(ip_of "$j") h$j"; done; } > "$d/merged/etc/hosts"
  ip netns add "hl-$h"; ip -n "hl-$h" link set lo up      # veth created directly inside the two namespaces
  ip link add "$h" netns $LABNS type veth peer name eth0 netns "hl-$h"
  ip -n $LABNS link set "$h" master br0 up
  ip -n "hl-$h" addr add "$ip/24" dev eth0; ip -n "hl-$h" link set eth0 up
  [ "$DEFAULT_ROUTE" = 0 ] || ip -n "hl-$h" route add default via "$NET.1"
  if [ -n "$NET2" ]; then
    ip link add "${h}b" netns $LABNS type veth peer name eth1 netns "hl-$h"
    ip -n $LABNS link set "${h}b" master br1 up
    ip -n "hl-$h" addr add "$(ip2_of "$i")/24" dev eth1; ip -n "hl-$h" link set eth1 up
  fi
  # shellcheck disable=SC2054  # the commas are systemd-nspawn list syntax
  local args=(--boot --directory="$d/merged" --machine="$h" --uuid="$(printf '00000000-0000-4000-8000-%012d' "$i")"
    --network-namespace-path="/run/netns/hl-$h" --capability=CAP_NET_ADMIN,CAP_BPF --system-call-filter='@keyring bpf'
    --bind="$d/containerd:/var/lib/containerd" --resolv-conf=off --register=no --keep-unit --console=read-only)
  # API_VFS_WRITABLE=network: /proc/sys/net rw (per-netns sysctls); UNIFIED: cgroup v2 inside, like a real Debian 12 or 13;
  # @keyring+bpf+CAP_BPF: needed by runc (`ctr run`). `reboot` inside makes nspawn exit 133 -> loop restarts it.
  # The loop joins $CG/hN first (own cgroup per host, else all share /payload) and must not keep the lock fd 9.
  # shellcheck disable=SC2016  # expanded by the inner bash
  CGDIRS="$(for c in $(cg_roots); do echo "$c/$CG/$h"; done)" D=$d \
    SYSTEMD_NSPAWN_API_VFS_WRITABLE=network SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 \
    setsid bash -c 'for c in $CGDIRS; do mkdir -p "$c"; echo $$ > "$c/cgroup.procs"; done
      while systemd-nspawn "$@"; [ $? = 133 ] && [ ! -e "$D/stop" ]; do :; done' hostlab "${args[@]}" \
    </dev/null >>"$d/console.log" 2>&1 9>&- &
  echo "$ip" >> "$LAB/hosts.txt"
  echo "$ip $(cut -d' ' -f1,2 "$d/merged/etc/ssh/ssh_host_ed25519_key.pub")" >> "$LAB/known_hosts"
  [ -z "$NET2" ] || echo "$(ip2_of "$i") $(cut -d' ' -f1,2 "$d/merged/etc/ssh/ssh_host_ed25519_key.pub")" >> "$LAB/known_hosts"
}

wait_ssh() {  # poll each host's sshd, 30 s per host at most
  local i t ip
  for i in $(seq 1 "$1"); do
    ip=$(ip_of "$i")
    for ((t = 0; t < 150; t++)); do ip netns exec $LABNS ssh "${SSHO[@]}" "root@$ip" true 2>/dev/null && break; sleep 0.2; done
    ip netns exec $LABNS ssh "${SSHO[@]}" "root@$ip" true || die "h$i ($ip): no ssh, see $LAB/hosts/h$i/console.log"
  done
}

up() {
  local n=$1 i left
  if ! [[ $n =~ ^[0-9]+$ ]] || ((n < 1 || n > 200)); then die "up: host count must be 1..200, got '$n'"; fi
  left=$(leftovers)
  if [ -n "$left" ]; then echo "hostlab: clearing a leftover lab: $(echo "$left" | paste -sd, -)" >&2; down; fi
  base  # builds the base when missing; refuses a cached base of another suite
  fake_modules
  ip netns add $LABNS; ip -n $LABNS link set lo up
  ip -n $LABNS link add br0 type bridge; ip -n $LABNS addr add "$NET.1/24" dev br0; ip -n $LABNS link set br0 up
  if [ -n "$NET2" ]; then
    ip -n $LABNS link add br1 type bridge; ip -n $LABNS addr add "$NET2.1/24" dev br1; ip -n $LABNS link set br1 up
  fi
  # hl-lab routes nothing beyond br0; as a (forwarding) router it answers "network unreachable", so a host's connect
  # to the internet fails in ~1 s instead of hanging for minutes. The kernel still sends such errors at ~1/s per host
  # (net.ipv4.route.error_cost, global: left alone); icmp_ratelimit is per netns and would drop most of them.
  ip netns exec $LABNS sysctl -qw net.ipv4.ip_forward=1 net.ipv4.icmp_ratelimit=0
  : > "$LAB/hosts.txt"; : > "$LAB/known_hosts"
  for i in $(seq 1 "$n"); do start_host "$i" "$n"; done
  wait_ssh "$n"
  echo "up: $(tr '\n' ' ' < "$LAB/hosts.txt")"
}

down() {
  local d m p left
  grep -q "/$CG/" /proc/$$/cgroup && die "down: run it from outside the lab (this shell is in cgroup $CG)"
  for d in "$LAB"/hosts/*/; do [ -d "$d" ] && touch "$d/stop"; done   # no reboot-loop restarts from here on
  # SIGTERM to nspawn = SIGRTMIN+3 to the host's systemd = clean halt (~1 s). What is left then (the container init
  # of a crashed run whose nspawn died, servers started with `exec`) gets SIGKILL through the lab cgroup.
  for p in $(nspawn_pids); do kill -TERM "$p" 2>/dev/null || true; done
  until_gone 150 nspawn_pids || echo "hostlab: nspawn did not stop in 15 s, killing" >&2
  until_gone 50 cg_kill_all || die "processes survive SIGKILL: $(cg_pids | paste -sd' ' -)"
  for d in "$LAB"/hosts/*/; do  # nspawn's lock on the rootfs inode survives a killed nspawn
    [ -d "$d" ] && mountpoint -q "$d/merged" && rm -f "/run/systemd/nspawn/locks/inode-$(stat -c %d:%i "$d/merged")"
  done
  for m in $(lab_mounts); do umount "$m"; done
  for d in "$LAB"/hosts/*/; do [ -d "$d" ] && rm -rf "/run/systemd/nspawn/propagate/$(basename "$d")"; done
  rmdir /run/systemd/nspawn/propagate /run/systemd/nspawn/locks /run/systemd/nspawn 2>/dev/null || true
  for p in $(lab_netns); do ip netns del "$p"; done
  for d in $(cg_roots); do [ -d "$d/$CG" ] && find "$d/$CG" -depth -type d -exec rmdir {} +; done
  rm -rf "$LAB/hosts" "$LAB/hosts.txt" "$LAB/known_hosts"
  left=$(leftovers); [ -z "$left" ] || die "down left: $(echo "$left" | paste -sd, -)"
}
# shellcheck disable=SC2086  # $p is a list of pids
cg_kill_all() { local p; p=$(cg_pids); [ -z "$p" ] || { kill -KILL $p 2>/dev/null || true; echo "$p"; }; }

status() {  # exit 0: lab up, every host's nspawn running; 1: broken or partial lab; 3: no lab
  local left d h rc=0
  left=$(leftovers); [ -n "$left" ] || { echo "lab: down"; return 3; }
  [ -e /run/netns/$LABNS ] || { echo "lab: leftovers of a crashed run, 'up' or 'down' clears them: $(echo "$left" | paste -sd, -)"; return 1; }
  echo "lab: up, bridge $NET.1 in netns $LABNS"
  for d in "$LAB"/hosts/*/; do
    [ -d "$d" ] || continue; d=${d%/}; h=${d##*/}
    if [ -n "$(nspawn_pids "$h")" ]; then echo "$h $(cat "$d/ip" 2>/dev/null) running"
    else echo "$h $(cat "$d/ip" 2>/dev/null) stopped (see $d/console.log)"; rc=1; fi
  done
  return $rc
}

in_lab() {  # run a command inside hl-lab, in the lab cgroup so that `down` also ends it
  [ -e /run/netns/$LABNS ] || die "the lab is not up (no netns $LABNS): run '$0 up N' first"
  cg_join exec $$; exec ip netns exec $LABNS "$@"; }

case ${1:-} in
  deps) deps ;;
  base) lock base; base ;;
  up)   lock up; up "${2:-3}" ;;
  down) lock down; down ;;
  clean) lock clean; down; rm -rf "$LAB/base" "$LAB/keys" ;;
  status) status ;;
  ssh)  [ -n "${2:-}" ] || die "usage: $0 ssh I [command...]"; i=$2; shift 2; in_lab ssh "${SSHO[@]}" "root@$(ip_of "$i")" "$@" ;;
  exec) shift; in_lab "$@" ;;
  *) awk 'NR > 1 && !/^#/ {exit} NR > 1' "$0"; exit 2 ;;
esac
