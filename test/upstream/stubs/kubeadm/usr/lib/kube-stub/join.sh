# shellcheck shell=bash disable=SC2034  # globals set here are read by the other modules
# kubeadm join: bootstrap-token discovery (cluster-info signature, CA public-key pin), the cluster's settings,
# preflight (runtime checks; image pulls on control planes), registration, the node's files, kubelet start.

readonly JOIN_CONFIG_FLAGS=" token discovery-token discovery-token-ca-cert-hash discovery-token-unsafe-skip-ca-verification control-plane certificate-key node-name cri-socket apiserver-advertise-address apiserver-bind-port "

cmd_join() {
  local config="" endpoint="" value name
  local -A flags=()
  local -a hashes=()
  while (($#)); do
    name=${1%%=*}
    case $name in
      --config) take config "$@" ;;
      --ignore-preflight-errors) take IGNORED_PREFLIGHT "$@" ;;
      --v | -v) take value "$@" ;;
      --control-plane | --discovery-token-unsafe-skip-ca-verification) flags[${name#--}]=true SHIFT=1 ;;
      --discovery-token-ca-cert-hash)
        take value "$@"
        hashes+=("$value")
        flags[${name#--}]=given
        ;;
      --*)
        [[ $JOIN_CONFIG_FLAGS == *" ${name#--} "* ]] || kubeadm_fail "unknown flag: $name"
        take value "$@"
        flags[${name#--}]=$value
        ;;
      *) [[ -z $endpoint ]] || kubeadm_fail "accepts at most 1 arg(s), received 2"; endpoint=$1 SHIFT=1 ;;
    esac
    shift "$SHIFT"
  done
  if [[ -n $endpoint ]]; then flags[endpoint]=$endpoint; fi
  refuse_mixed_flags "$config" "${!flags[@]}"
  [[ -n $config ]] || join_flags_to_flat flags "${hashes[@]}"
  load_join_config "$config"
  run_join
}

# Builds FLAT (a JoinConfiguration) from the flags in the named array and the CA hashes that follow it.
join_flags_to_flat() {
  local -n given=$1
  shift
  local i=0 hash token=${given[token]:-}
  FLAT=""
  flat_add 0 apiVersion "$(newest_kubeadm_api)"
  flat_add 0 kind JoinConfiguration
  flat_add 0 discovery.bootstrapToken.apiServerEndpoint "${given[endpoint]:-}"
  flat_add 0 discovery.bootstrapToken.token "${given[discovery-token]:-$token}"
  for hash in "$@"; do flat_add 0 "discovery.bootstrapToken.caCertHashes.$((i++))" "$hash"; done
  flat_add 0 discovery.bootstrapToken.unsafeSkipCAVerification "${given[discovery-token-unsafe-skip-ca-verification]:-}"
  flat_add 0 nodeRegistration.name "${given[node-name]:-}"
  flat_add 0 nodeRegistration.criSocket "${given[cri-socket]:-}"
  if [[ -n ${given[control-plane]:-} ]]; then
    flat_add 0 controlPlane "{}"
    flat_add 0 controlPlane.certificateKey "${given[certificate-key]:-}"
    flat_add 0 controlPlane.localAPIEndpoint.advertiseAddress "${given[apiserver-advertise-address]:-}"
    flat_add 0 controlPlane.localAPIEndpoint.bindPort "${given[apiserver-bind-port]:-}"
  fi
}

run_join() {
  local role=worker images_ok=1 node_ip
  ((JOIN_CONTROL_PLANE)) && role=control-plane
  resolve_cri_socket "$CFG_CRI_SOCKET"
  echo "[preflight] Running pre-flight checks"
  system_preflight
  preflight_file_available "$KUBE_DIR/kubelet.conf"
  preflight_file_available "$KUBE_DIR/bootstrap-kubelet.conf"
  ((JOIN_CONTROL_PLANE)) || preflight_file_available "$KUBE_DIR/pki/ca.crt"
  preflight_finish   # like kubeadm, before discovery: a node that joined already is refused without asking the cluster
  JOIN_CA_FILE=$(mktemp)
  trap 'rm -f "$JOIN_CA_FILE"' EXIT
  discover_cluster "$JOIN_CA_FILE"
  fetch_cluster_settings
  cri_preflight "${CLUSTER[pause_image]}" "${CLUSTER[cgroup_driver]}"
  preflight_finish
  ((JOIN_CONTROL_PLANE)) && control_plane_preflight
  node_image_pulls || images_ok=0

  node_ip=${CFG_NODE_IP:-$(host_address "$CFG_ADVERTISE")}
  register "$role" "$node_ip" "$images_ok"
  install_ca "$JOIN_CA_FILE"
  write_kubeconfig "$KUBE_DIR/kubelet.conf" "https://$JOIN_ENDPOINT" "system:node:$CFG_NODE_NAME"
  if ((JOIN_CONTROL_PLANE)); then
    join_control_plane "$node_ip"
  else
    write_node_env worker "$JOIN_ENDPOINT" ""
  fi
  write_kubelet_files "${CLUSTER[cgroup_driver]}" "${CLUSTER[cluster_dns]}" "${CLUSTER[pause_image]}"
  start_kubelet
  echo "[kubelet-start] Waiting for the kubelet to perform the TLS Bootstrap"
  print_join_success
}

# Fetches cluster-info through the token ID, checks its signature with the token secret and the CA's
# public key against caCertHashes, and leaves the CA in CA_FILE.
discover_cluster() {
  local ca_file=$1 body signature hash
  if ! body=$(api_call "$JOIN_ENDPOINT" CLUSTER-INFO "${JOIN_TOKEN%%.*}"); then
    kubeadm_fail "error execution phase preflight: couldn't validate the identity of the API Server: Get \"https://$JOIN_ENDPOINT/api/v1/namespaces/kube-public/configmaps/cluster-info?timeout=10s\": $body"
  fi
  signature=${body%%$'\n'*}
  printf '%s\n' "${body#*$'\n'}" >"$ca_file"
  [[ $(cluster_info_signature "$JOIN_TOKEN" "$ca_file") == "$signature" ]] ||
    kubeadm_fail "error execution phase preflight: couldn't validate the identity of the API Server: failed to verify JWS signature of received cluster info object, can't trust this API Server"
  if ((JOIN_SKIP_CA_CHECK)); then
    echo "[discovery] WARNING: the cluster CA was not verified (unsafeSkipCAVerification)" >&2
    return
  fi
  hash=$(ca_cert_hash "$ca_file") || kubeadm_fail "error execution phase preflight: could not parse the CA certificate from cluster-info"
  printf '%s\n' "${JOIN_CA_HASHES[@]}" | grep -qxF -- "$hash" ||
    kubeadm_fail "error execution phase preflight: couldn't validate the identity of the API Server: cluster CA found in cluster-info ConfigMap is invalid: none of the public keys \"$hash\" are pinned"
}

# The kubeadm-config the control plane recorded, into CLUSTER[...] and the *_IMAGES arrays.
fetch_cluster_settings() {
  local body key value
  echo "[preflight] Reading configuration from the \"kubeadm-config\" ConfigMap in namespace \"kube-system\"..."
  body=$(api_call "$JOIN_ENDPOINT" CONFIG "$JOIN_TOKEN") ||
    kubeadm_fail "error execution phase preflight: unable to fetch the kubeadm-config ConfigMap: $body"
  declare -gA CLUSTER=()
  CONTROL_PLANE_IMAGES=() NODE_IMAGES=() ADDON_IMAGES=()
  while IFS='=' read -r key value; do
    case $key in
      control_plane_image) CONTROL_PLANE_IMAGES+=("$value") ;;
      node_image) NODE_IMAGES+=("$value") ;;
      addon_image) ADDON_IMAGES+=("$value") ;;
      ?*) CLUSTER[$key]=$value ;;
    esac
  done <<<"$body"
}

# What kubeadm checks before a node may become a control plane; then the control-plane image pulls.
control_plane_preflight() {
  local problem=""
  if [[ -z ${CLUSTER[control_plane_endpoint]} ]]; then
    problem="unable to add a new control plane instance to a cluster that doesn't have a stable controlPlaneEndpoint address"
  elif [[ -z $JOIN_CERT_KEY && ! -f $ROOT$KUBE_DIR/pki/ca.crt ]]; then
    problem="failure loading certificate for CA: couldn't load the certificate file $KUBE_DIR/pki/ca.crt: open $KUBE_DIR/pki/ca.crt: no such file or directory"
  fi
  if [[ -n $problem ]]; then
    kubeadm_fail "error execution phase preflight: 
One or more conditions for hosting a new control plane instance is not satisfied.

$problem

Please ensure that:
* The cluster has a stable controlPlaneEndpoint address.
* The certificates that must be shared among control plane instances are provided.
"
  fi
  echo "[preflight] Running pre-flight checks before initializing the new control plane instance"
  control_plane_node_checks
  preflight_finish
  echo "[preflight] Pulling images required for setting up a Kubernetes cluster"
  pull_images "$CFG_PULL_POLICY" "${CONTROL_PLANE_IMAGES[@]}" || true
  preflight_finish
}

# What this node's kubelet would pull for its own pods (kube-proxy, applied DaemonSets). A failure does not stop
# the join, as with the real kubelet, but leaves the node NotReady.
node_image_pulls() {
  local error
  pull_images "$CFG_PULL_POLICY" "${NODE_IMAGES[@]}" "${ADDON_IMAGES[@]}" && return 0
  for error in "${PREFLIGHT_ERRORS[@]}"; do
    printf '[kubelet] WARNING: %s (the node will stay NotReady)\n' "$error" >&2
  done
  PREFLIGHT_ERRORS=()
  return 1
}

register() {
  local role=$1 node_ip=$2 images_ok=$3 key_hash=- answer
  [[ -n $JOIN_CERT_KEY ]] && key_hash=$(sha256_of "$JOIN_CERT_KEY")
  answer=$(api_call "$JOIN_ENDPOINT" JOIN "$JOIN_TOKEN" "$CFG_NODE_NAME" "$role" "$node_ip" "$key_hash" \
    "$(kubelet_version)" "$(os_image)" "$(uname -r)" "$(runtime_version)" "$images_ok") ||
    kubeadm_fail "error execution phase $( ((JOIN_CONTROL_PLANE)) && echo control-plane-prepare/download-certs || echo kubelet-start): $answer"
}

join_control_plane() {
  local node_ip=$1 endpoint
  endpoint=$(with_api_port "${CLUSTER[control_plane_endpoint]}")
  echo "[download-certs] Downloading the certificates in Secret \"kubeadm-certs\" in the \"kube-system\" Namespace"
  echo "[certs] Using certificateDir folder \"$KUBE_DIR/pki\""
  echo "[kubeconfig] Writing \"admin.conf\" kubeconfig file"
  write_kubeconfig "$KUBE_DIR/admin.conf" "https://$endpoint" kubernetes-admin
  write_static_pods "${CONTROL_PLANE_IMAGES[@]}"
  write_node_env control-plane "$endpoint" "${CLUSTER[leader]}"
  start_api_endpoint
  echo "[mark-control-plane] Marking the node $CFG_NODE_NAME ($node_ip) as control-plane by adding the labels: [node-role.kubernetes.io/control-plane node.kubernetes.io/exclude-from-external-load-balancers]"
}

print_join_success() {
  if ((JOIN_CONTROL_PLANE)); then
    cat <<EOF

This node has joined the cluster and a new control plane instance was created:

* Certificate signing request was sent to apiserver and approval was received.
* The Kubelet was informed of the new secure connection details.
* Control plane label and taint were applied to the new node.
* The Kubernetes control plane instances scaled up.
* A new etcd member was added to the local/stacked etcd cluster.

To start administering your cluster from this node, you need to run the following as a regular user:

	mkdir -p \$HOME/.kube
	sudo cp -i $KUBE_DIR/admin.conf \$HOME/.kube/config
	sudo chown \$(id -u):\$(id -g) \$HOME/.kube/config

Run 'kubectl get nodes' to see this node join the cluster.
EOF
  else
    cat <<EOF

This node has joined the cluster:
* Certificate signing request was sent to apiserver and a response was received.
* The Kubelet was informed of the new secure connection details.

Run 'kubectl get nodes' on the control-plane to see this node join the cluster.
EOF
  fi
}
