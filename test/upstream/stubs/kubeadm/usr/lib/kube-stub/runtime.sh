# shellcheck shell=bash disable=SC2034  # globals set here are read by the other modules
# kubeadm's preflight checks, most of all the container runtime ones: which CRI socket, whether the runtime is
# configured the way a kubeadm node needs it (what the real CRI would make fail later), and image pulls.

readonly CONTAINERD_SOCKET=unix:///var/run/containerd/containerd.sock
readonly CRIO_SOCKET=unix:///var/run/crio/crio.sock
readonly CRI_DOCKERD_SOCKET=unix:///var/run/cri-dockerd.sock
readonly CRI_DOCKERD_STATE=/run/cri-dockerd/kube-stub.env   # written by the cri-dockerd stub when it starts

PREFLIGHT_ERRORS=()
PULLED=()              # images pull_images fetched
IGNORED_PREFLIGHT=""   # the comma-separated --ignore-preflight-errors value

# preflight_error CHECK MESSAGE: a fatal preflight error, or a warning when CHECK is ignored.
preflight_error() {
  if [[ ,${IGNORED_PREFLIGHT,,}, == *,all,* || ,${IGNORED_PREFLIGHT,,}, == *,${1,,},* ]]; then
    printf '\t[WARNING %s]: %s\n' "$1" "$2" >&2
  else
    PREFLIGHT_ERRORS+=("[ERROR $1]: $2")
  fi
}

preflight_warning() { printf '\t[WARNING %s]: %s\n' "$1" "$2" >&2; }

# Fails like kubeadm when the checks so far recorded errors.
preflight_finish() {
  ((${#PREFLIGHT_ERRORS[@]})) || return 0
  kubeadm_fail "error execution phase preflight: [preflight] Some fatal errors occurred:
$(printf '\t%s\n' "${PREFLIGHT_ERRORS[@]}")
[preflight] If you know what you are doing, you can make a check non-fatal with \`--ignore-preflight-errors=...\`"
}

# Checks every node needs, before the runtime ones.
system_preflight() {
  local forward
  forward=$(cat "$ROOT/proc/sys/net/ipv4/ip_forward" 2>/dev/null || true)
  [[ $forward == 1 ]] ||
    preflight_error FileContent--proc-sys-net-ipv4-ip_forward "/proc/sys/net/ipv4/ip_forward contents are not set to 1"
  if ! command -v kubelet >/dev/null; then
    preflight_error KubeletVersion "couldn't get kubelet version: cannot execute 'kubelet --version': executable file not found in \$PATH"
  fi
  systemctl is-enabled --quiet kubelet.service 2>/dev/null ||
    preflight_warning Service-Kubelet "kubelet service is not enabled, please run 'systemctl enable kubelet.service'"
  preflight_port_open 10250   # the kubelet's
}

# preflight_file_available PATH: kubeadm's FileAvailableCheck, which refuses to overwrite what an earlier
# init/join left.
preflight_file_available() {
  [[ ! -e $ROOT$1 ]] || preflight_error "FileAvailable-${1//\//-}" "$1 already exists"
}

# preflight_dir_available PATH: kubeadm's DirAvailableCheck (etcd's data dir): missing or empty.
preflight_dir_available() {
  if [[ -e $ROOT$1 && -n $(ls -A "$ROOT$1" 2>/dev/null) ]]; then
    preflight_error "DirAvailable-${1//\//-}" "$1 is not empty"
  fi
}

# preflight_port_open PORT: kubeadm's PortOpenCheck. kubeadm tries to listen on :PORT; the stub looks for a
# listening TCP socket (state 0A) on PORT in /proc/net/tcp and tcp6 instead, which is what makes that listen fail
# (no ss or netstat needed).
preflight_port_open() {
  local hex tables=() table
  hex=$(printf '%04X' "$1")
  for table in "$ROOT/proc/net/tcp" "$ROOT/proc/net/tcp6"; do [[ -r $table ]] && tables+=("$table"); done
  ((${#tables[@]})) || return 0
  if awk -v port=":$hex" '$4 == "0A" && substr($2, length($2) - 4) == port { found = 1 } END { exit !found }' "${tables[@]}"; then
    preflight_error "Port-$1" "Port $1 is in use"
  fi
}

# The checks kubeadm runs before a node becomes a control plane (InitNodeChecks: `kubeadm init`, and a
# control-plane join): the API server's, scheduler's and controller manager's ports, no static Pod manifests
# left, and for a local etcd its ports and an empty data directory.
control_plane_node_checks() {
  local component
  preflight_port_open "$API_PORT"
  preflight_port_open 10259
  preflight_port_open 10257
  for component in kube-apiserver kube-controller-manager kube-scheduler etcd; do
    preflight_file_available "$KUBE_DIR/manifests/$component.yaml"
  done
  if [[ -z ${CFG_ETCD_EXTERNAL:-} ]]; then
    preflight_port_open 2379
    preflight_port_open 2380
    preflight_dir_available "${CFG_ETCD_DATA_DIR:-$ETCD_DATA_DIR}"
  fi
}

# Sets CRI_SOCKET and CRI_RUNTIME (containerd or docker) from nodeRegistration.criSocket, or finds the one
# socket present like kubeadm does when it is not set.
resolve_cri_socket() {
  local configured=$1 socket found=()
  if [[ -z $configured ]]; then
    for socket in "$CONTAINERD_SOCKET" "$CRIO_SOCKET" "$CRI_DOCKERD_SOCKET"; do
      [[ -S $ROOT${socket#unix://} ]] && found+=("$socket")
    done
    ((${#found[@]} <= 1)) ||
      kubeadm_fail "found multiple CRI endpoints on the host. Please define which one do you wish to use by setting the 'criSocket' field in the kubeadm configuration file: $(IFS=,; echo "${found[*]}")"
    configured=${found[0]:-$CONTAINERD_SOCKET}
  fi
  [[ $configured == unix://* ]] ||
    kubeadm_fail "nodeRegistration.criSocket: Invalid value: \"$configured\": the kube-stub accepts only unix:// CRI endpoints"
  CRI_SOCKET=$configured
  case $CRI_SOCKET in
    *cri-dockerd*) CRI_RUNTIME=docker ;;
    *containerd*) CRI_RUNTIME=containerd ;;
    *) kubeadm_fail "nodeRegistration.criSocket: Invalid value: \"$CRI_SOCKET\": the kube-stub supports containerd and cri-dockerd only" ;;
  esac
}

# cri_preflight PAUSE_IMAGE CGROUP_DRIVER: is the runtime behind CRI_SOCKET up and configured like kubeadm's
# kubelet needs it? Sets HOSTS_DIR (containerd's registry config_path) for the pulls. An empty PAUSE_IMAGE or
# CGROUP_DRIVER skips that comparison (`config images pull` only needs a running runtime).
cri_preflight() {
  local pause=$1 cgroup_driver=$2 path=${CRI_SOCKET#unix://}
  HOSTS_DIR=""
  if [[ ! -S $ROOT$path ]]; then
    preflight_error CRI "container runtime is not running: validate CRI v1 runtime API for endpoint \"$CRI_SOCKET\": rpc error: code = Unavailable desc = connection error: desc = \"transport: Error while dialing: dial unix $path: connect: no such file or directory\""
    return
  fi
  case $CRI_RUNTIME in
    containerd) containerd_preflight "$pause" "$cgroup_driver" ;;
    docker) cri_dockerd_preflight "$pause" ;;
  esac
}

# containerd_setting DUMP TABLE KEY: a value from `containerd config dump` output. Table names are compared
# without quotes, so [plugins."io.containerd.grpc.v1.cri"] and [plugins.'io.containerd.cri.v1.images'] both work.
containerd_setting() {
  awk -v want_table="$2" -v want_key="$3" '
    /^[ \t]*\[/ { table = $0; gsub(/[][ \t"\047]/, "", table); next }
    {
      line = $0; sub(/^[ \t]+/, "", line)
      eq = index(line, "="); if (eq == 0) next
      key = substr(line, 1, eq - 1); sub(/[ \t]+$/, "", key)
      if (table != want_table || key != want_key) next
      value = substr(line, eq + 1); sub(/^[ \t]+/, "", value); sub(/[ \t]+$/, "", value)
      gsub(/^["\047]|["\047]$/, "", value)
      print value; exit
    }' <<<"$1"
}

# The checks on `containerd config dump` (config version 2 = containerd 1.x keys, 3 = containerd 2.x keys).
containerd_preflight() {
  local pause=$1 cgroup_driver=$2 dump version cri sandbox_table sandbox_key registry_table runc_table
  local sandbox config_path systemd_cgroup disabled
  if ! dump=$(containerd config dump 2>&1); then
    preflight_error CRI "container runtime is not running: \`containerd config dump\` failed: $dump"
    return
  fi
  version=$(containerd_setting "$dump" "" version)
  case $version in
    2)
      cri=plugins.io.containerd.grpc.v1.cri
      sandbox_table=$cri sandbox_key=sandbox_image registry_table=$cri.registry
      runc_table=$cri.containerd.runtimes.runc.options
      ;;
    3)
      sandbox_table=plugins.io.containerd.cri.v1.images.pinned_images sandbox_key=sandbox
      registry_table=plugins.io.containerd.cri.v1.images.registry
      runc_table=plugins.io.containerd.cri.v1.runtime.containerd.runtimes.runc.options
      ;;
    *)
      preflight_error CRI "containerd config dump has no config version 2 or 3 (got \"$version\")"
      return
      ;;
  esac
  disabled=$(containerd_setting "$dump" "" disabled_plugins)
  if [[ $disabled == *'"cri"'* || $disabled == *"'cri'"* || $disabled == *io.containerd.grpc.v1.cri* ]]; then
    preflight_error CRI "container runtime is not running: validate CRI v1 runtime API for endpoint \"$CRI_SOCKET\": rpc error: code = Unimplemented desc = unknown service runtime.v1.RuntimeService"
    return
  fi
  sandbox=$(containerd_setting "$dump" "$sandbox_table" "$sandbox_key")
  [[ -z $pause || $sandbox == "$pause" ]] ||
    preflight_error CRI "detected that the sandbox image \"$sandbox\" of the container runtime is inconsistent with that used by kubeadm. It is recommended to use \"$pause\" as the CRI sandbox image (containerd: $sandbox_key in [$sandbox_table])."
  systemd_cgroup=$(containerd_setting "$dump" "$runc_table" SystemdCgroup)
  if [[ $cgroup_driver == systemd && $systemd_cgroup != true ]]; then
    preflight_error CRI "the kubelet uses the \"systemd\" cgroup driver but containerd runs runc with cgroupfs: SystemdCgroup is not true in [$runc_table]"
  elif [[ $cgroup_driver == cgroupfs && $systemd_cgroup == true ]]; then
    preflight_error CRI "the kubelet uses the \"cgroupfs\" cgroup driver but containerd runs runc with SystemdCgroup = true"
  fi
  config_path=$(containerd_setting "$dump" "$registry_table" config_path)
  if [[ -z $config_path ]]; then
    preflight_error CRI "containerd has no registry config_path in [$registry_table]: its CRI would ignore /etc/containerd/certs.d/*/hosts.toml and pull from the upstream registries"
  fi
  HOSTS_DIR=$config_path
}

# cri-dockerd must be running with the pause image kubeadm expects (its --pod-infra-container-image).
cri_dockerd_preflight() {
  local pause=$1 state=$ROOT$CRI_DOCKERD_STATE sandbox
  if [[ ! -f $state ]]; then
    preflight_error CRI "container runtime is not running: cri-dockerd does not answer on $CRI_SOCKET (is cri-docker.service running?)"
    return
  fi
  sandbox=$(kv_get "$state" pod_infra_container_image)
  [[ -z $pause || $sandbox == "$pause" ]] ||
    preflight_error CRI "detected that the sandbox image \"$sandbox\" of the container runtime is inconsistent with that used by kubeadm. It is recommended to use \"$pause\" as the CRI sandbox image (cri-dockerd --pod-infra-container-image)."
}

# The fully qualified form the CRI turns an image name into (pause -> docker.io/library/pause:latest).
normalize_image_ref() {
  local ref=$1 first=${1%%/*}
  if [[ $ref != */* ]]; then
    ref=docker.io/library/$ref
  elif [[ $first != *.* && $first != *:* && $first != localhost ]]; then
    ref=docker.io/$ref
  fi
  [[ $ref == *@* || ${ref##*/} == *:* ]] || ref+=:latest
  printf '%s\n' "$ref"
}

# pull_images POLICY REF...: pulls like the kubelet/kubeadm through CRI_RUNTIME (ctr with containerd's hosts dir,
# or docker), skipping images already present unless POLICY is Always; records an ImagePull preflight error per
# failure and returns 1 when there was one.
pull_images() {
  local policy=$1 ref present="" output failed=0
  shift
  case $CRI_RUNTIME in
    containerd) present=$(ctr -n k8s.io images ls -q 2>/dev/null || true) ;;
  esac
  for ref in "$@"; do
    ref=$(normalize_image_ref "$ref")
    if [[ $policy != Always ]] && image_present "$ref" "$present"; then
      continue
    fi
    if [[ $policy == Never ]]; then
      preflight_error ImagePull "image $ref is not present and imagePullPolicy is Never"
      failed=1
      continue
    fi
    if ! output=$(pull_one "$ref" 2>&1); then
      preflight_error ImagePull "failed to pull image $ref: output: $output, error: exit status 1"
      failed=1
    else
      PULLED+=("$ref")
    fi
  done
  return "$failed"
}

image_present() {
  case $CRI_RUNTIME in
    containerd) grep -qxF -- "$1" <<<"$2" ;;
    docker) docker image inspect "$1" >/dev/null 2>&1 ;;
  esac
}

pull_one() {
  case $CRI_RUNTIME in
    containerd) ctr -n k8s.io images pull ${HOSTS_DIR:+--hosts-dir "$HOSTS_DIR"} "$1" ;;
    docker) docker pull "$1" ;;
  esac
}

# "containerd://1.6.20" or "docker://20.10.24", as nodes report their runtime.
runtime_version() {
  local version
  case $CRI_RUNTIME in
    containerd) version=$(containerd --version 2>/dev/null | awk '{ print $3 }') ;;
    docker) version=$(docker --version 2>/dev/null | awk '{ sub(/,$/, "", $3); print $3 }') ;;
  esac
  printf '%s://%s\n' "$CRI_RUNTIME" "${version%%~*}"
}
