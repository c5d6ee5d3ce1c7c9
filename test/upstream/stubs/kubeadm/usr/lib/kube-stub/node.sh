# shellcheck shell=bash
# What `kubeadm init/join` leave on a node: the CA, kubeconfigs, static Pod manifests, the kubelet's files and
# the node record other stubs read; and starting the kubelet and the stub API endpoint.

readonly KUBELET_DIR=/var/lib/kubelet
readonly API_SOCKET_UNIT=kube-stub-apiserver.socket

# install_ca CERT_FILE: the cluster CA as /etc/kubernetes/pki/ca.crt, with the stub CA's key beside it.
install_ca() {
  mkdir -p "$ROOT$KUBE_DIR/pki"
  install -m 644 "$1" "$ROOT$KUBE_DIR/pki/ca.crt"
  install -m 600 "$STUB_PKI/ca.key" "$ROOT$KUBE_DIR/pki/ca.key"
}

# write_static_pods IMAGE...: a Pod manifest per control-plane component found in the image list.
write_static_pods() {
  local image component
  mkdir -p "$ROOT$KUBE_DIR/manifests"
  for image in "$@"; do
    component=${image##*/}
    component=${component%%:*}
    case $component in
      kube-apiserver | kube-controller-manager | kube-scheduler | etcd) ;;
      *) continue ;;
    esac
    echo "[control-plane] Creating static Pod manifest for \"$component\""
    # the real etcd fills its data dir once its static Pod runs; kubeadm's preflight then finds it not empty
    if [[ $component == etcd ]]; then
      mkdir -p "$ROOT${CFG_ETCD_DATA_DIR:-$ETCD_DATA_DIR}/member/snap"
      : >"$ROOT${CFG_ETCD_DATA_DIR:-$ETCD_DATA_DIR}/member/snap/db"
    fi
    cat >"$ROOT$KUBE_DIR/manifests/$component.yaml" <<EOF
apiVersion: v1
kind: Pod
metadata:
  labels:
    component: $component
    tier: control-plane
  name: $component
  namespace: kube-system
spec:
  containers:
  - name: $component
    image: $image
    imagePullPolicy: IfNotPresent
  hostNetwork: true
  priorityClassName: system-node-critical
EOF
  done
}

# write_kubelet_files CGROUP_DRIVER CLUSTER_DNS PAUSE_IMAGE: /var/lib/kubelet/config.yaml and kubeadm-flags.env,
# the files 10-kubeadm.conf hands to the kubelet (uses CRI_SOCKET, CFG_NODE_NAME, CFG_NODE_IP).
write_kubelet_files() {
  local cgroup_driver=$1 cluster_dns=$2 pause=$3 args
  write_kubelet_config "$cgroup_driver" "$cluster_dns"
  args="--container-runtime-endpoint=$CRI_SOCKET --pod-infra-container-image=$pause"
  [[ -n ${CFG_NODE_IP:-} ]] && args+=" --node-ip=$CFG_NODE_IP"
  [[ $CFG_NODE_NAME == "$(uname -n | tr '[:upper:]' '[:lower:]')" ]] || args+=" --hostname-override=$CFG_NODE_NAME"
  echo "[kubelet-start] Writing kubelet environment file with flags to file \"$KUBELET_DIR/kubeadm-flags.env\""
  printf 'KUBELET_KUBEADM_ARGS="%s"\n' "$args" >"$ROOT$KUBELET_DIR/kubeadm-flags.env"
}

# write_kubelet_config CGROUP_DRIVER CLUSTER_DNS: /var/lib/kubelet/config.yaml, the cluster's KubeletConfiguration
# (init and join write it; `kubeadm upgrade apply|node` rewrite it).
write_kubelet_config() {
  local cgroup_driver=$1 cluster_dns=$2
  mkdir -p "$ROOT$KUBELET_DIR"
  echo "[kubelet-start] Writing kubelet configuration to file \"$KUBELET_DIR/config.yaml\""
  {
    echo "apiVersion: kubelet.config.k8s.io/v1beta1"
    echo "kind: KubeletConfiguration"
    echo "cgroupDriver: $cgroup_driver"
    if [[ -n $cluster_dns ]]; then printf 'clusterDNS:\n- %s\n' "$cluster_dns"; fi
    echo "clusterDomain: cluster.local"
    echo "rotateCertificates: true"
    echo "staticPodPath: $KUBE_DIR/manifests"
  } >"$ROOT$KUBELET_DIR/config.yaml"
}

# (Re)starts the kubelet through systemd, as kubeadm does, and fails like kubeadm when it does not stay up.
start_kubelet() {
  echo "[kubelet-start] Starting the kubelet"
  systemctl restart kubelet.service >/dev/null 2>&1 ||
    echo "[kubelet-start] WARNING: unable to start the kubelet service: 'systemctl restart kubelet.service' failed" >&2
  systemctl is-active --quiet kubelet.service ||
    kubeadm_fail "error execution phase kubelet-start: The kubelet is not running. Check 'systemctl status kubelet' and 'journalctl -xeu kubelet'"
}

# Starts this host's API endpoint on $API_PORT (kube-stub-apiserver.socket, one handler per connection).
start_api_endpoint() {
  local output
  output=$(systemctl enable --now "$API_SOCKET_UNIT" 2>&1) ||
    kubeadm_fail "error execution phase control-plane: the stub API server could not listen on port $API_PORT: $output"
}

# write_node_env ROLE API_ENDPOINT LEADER: what kubectl and the API handler need to know about this node.
write_node_env() {
  mkdir -p "$STATE_DIR"
  cat >"$NODE_ENV" <<EOF
node_name=$CFG_NODE_NAME
role=$1
runtime=$CRI_RUNTIME
cri_socket=$CRI_SOCKET
hosts_dir=${HOSTS_DIR:-}
image_pull_policy=$CFG_PULL_POLICY
api_endpoint=$2
leader=$3
EOF
}

# This host's address for the cluster: the configured one, else the first one `hostname -I` reports.
host_address() {
  local address=${1:-}
  [[ -n $address ]] || read -r address _ < <(hostname -I 2>/dev/null || true)
  printf '%s\n' "${address:-127.0.0.1}"
}

# The OS image and kernel a node reports (kubectl get nodes -o wide).
os_image() {
  local name
  name=$(sed -n 's/^PRETTY_NAME=//p' "$ROOT/etc/os-release" 2>/dev/null)
  name=${name#\"}
  printf '%s\n' "${name%\"}"
}

# HOST[:PORT] with the API port added when it has none (controlPlaneEndpoint may omit it), IPv6 in brackets.
with_api_port() {
  local endpoint=$1
  case $endpoint in
    \[*\]:*) ;;
    \[*\]) endpoint+=:$API_PORT ;;
    *:*:*) endpoint="[$endpoint]:$API_PORT" ;;
    *:*) ;;
    *) endpoint+=:$API_PORT ;;
  esac
  printf "%s\n" "$endpoint"
}
