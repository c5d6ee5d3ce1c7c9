# shellcheck shell=bash disable=SC2034  # globals set here are read by the other modules
# kubeadm init: validate the config, preflight (runtime checks, image pulls), write the control plane's files,
# start the kubelet and the stub API endpoint, record the cluster, print the join commands.

# Flags that stand for config fields; kubeadm refuses them next to --config.
readonly INIT_CONFIG_FLAGS=" kubernetes-version pod-network-cidr service-cidr control-plane-endpoint image-repository apiserver-advertise-address apiserver-bind-port token token-ttl cri-socket node-name "

cmd_init() {
  local config="" upload_certs=0 skip_phases="" certificate_key="" value name
  local -A flags=()
  while (($#)); do
    name=${1%%=*}
    case $name in
      --config) take config "$@" ;;
      --upload-certs) upload_certs=1 SHIFT=1 ;;
      --skip-token-print) SHIFT=1 ;;
      --skip-phases) take skip_phases "$@" ;;
      --ignore-preflight-errors) take IGNORED_PREFLIGHT "$@" ;;
      --certificate-key) take certificate_key "$@" ;;
      --v | -v) take value "$@" ;;
      --*)
        [[ $INIT_CONFIG_FLAGS == *" ${name#--} "* ]] || kubeadm_fail "unknown flag: $name"
        take value "$@"
        flags[${name#--}]=$value
        ;;
      *) kubeadm_fail "unknown command \"$1\" for \"kubeadm init\"" ;;
    esac
    shift "$SHIFT"
  done
  refuse_mixed_flags "$config" "${!flags[@]}"
  [[ -n $config ]] || init_flags_to_flat flags
  load_init_config "$config"
  if [[ -n $certificate_key ]]; then
    [[ $certificate_key =~ $CERTIFICATE_KEY_FORMAT ]] ||
      kubeadm_fail "--certificate-key: Invalid value: \"$certificate_key\": must be 64 lowercase hexadecimal characters (32 bytes)"
    CFG_CERT_KEY=$certificate_key
  fi
  [[ -n $skip_phases ]] && IFS=, read -r -a CFG_SKIP_PHASES <<<"$skip_phases"
  run_init "$upload_certs"
}

# Builds FLAT (an InitConfiguration and a ClusterConfiguration) from the command-line flags in the named array.
init_flags_to_flat() {
  local -n given=$1
  local api version=${given[kubernetes-version]:-}
  api=$(newest_kubeadm_api)
  if [[ -z $version ]]; then
    echo "W0000 version.go:104] could not fetch a Kubernetes version from the internet: unable to get URL \"https://dl.k8s.io/release/stable-1.txt\"" >&2
    echo "W0000 version.go:105] falling back to the local client version: $KUBE_VERSION" >&2
    version=$KUBE_VERSION
  fi
  FLAT=""
  flat_add 0 apiVersion "$api"
  flat_add 0 kind InitConfiguration
  flat_add 0 bootstrapTokens.0.token "${given[token]:-}"
  flat_add 0 bootstrapTokens.0.ttl "${given[token-ttl]:-}"
  flat_add 0 nodeRegistration.name "${given[node-name]:-}"
  flat_add 0 nodeRegistration.criSocket "${given[cri-socket]:-}"
  flat_add 0 localAPIEndpoint.advertiseAddress "${given[apiserver-advertise-address]:-}"
  flat_add 0 localAPIEndpoint.bindPort "${given[apiserver-bind-port]:-}"
  flat_add 1 apiVersion "$api"
  flat_add 1 kind ClusterConfiguration
  flat_add 1 kubernetesVersion "$version"
  flat_add 1 controlPlaneEndpoint "${given[control-plane-endpoint]:-}"
  flat_add 1 imageRepository "${given[image-repository]:-}"
  flat_add 1 networking.podSubnet "${given[pod-network-cidr]:-}"
  flat_add 1 networking.serviceSubnet "${given[service-cidr]:-}"
}

phase_skipped() {
  local phase
  for phase in "${CFG_SKIP_PHASES[@]}"; do [[ $phase == "$1" ]] && return 0; done
  return 1
}

run_init() {
  local upload_certs=$1 pause advertise leader api_endpoint cluster_dns
  local -a images
  echo "[init] Using Kubernetes version: $CFG_VERSION"
  resolve_cri_socket "$CFG_CRI_SOCKET"
  mapfile -t images < <(control_plane_images)
  pause=$(pause_image)
  if phase_skipped preflight; then
    cri_preflight "$pause" "$CFG_CGROUP_DRIVER"   # only to learn containerd's hosts dir
    PREFLIGHT_ERRORS=()
  else
    echo "[preflight] Running pre-flight checks"
    control_plane_node_checks
    system_preflight
    cri_preflight "$pause" "$CFG_CGROUP_DRIVER"
    preflight_finish
    echo "[preflight] Pulling images required for setting up a Kubernetes cluster"
    echo "[preflight] This might take a minute or two, depending on the speed of your internet connection"
    echo "[preflight] You can also perform this action beforehand using 'kubeadm config images pull'"
    pull_images "$CFG_PULL_POLICY" "${images[@]}" || true
    preflight_finish
  fi

  advertise=$(host_address "$CFG_ADVERTISE")
  leader=$(with_api_port "$advertise")
  api_endpoint=$leader
  [[ -n $CFG_CP_ENDPOINT ]] && api_endpoint=$(with_api_port "$CFG_CP_ENDPOINT")
  cluster_dns=$(cluster_dns_ip "$CFG_SERVICE_SUBNET")

  echo "[certs] Using certificateDir folder \"$KUBE_DIR/pki\""
  echo "[certs] Generating \"ca\" certificate and key"
  install_ca "$STUB_PKI/ca.crt"
  echo "[kubeconfig] Using kubeconfig folder \"$KUBE_DIR\""
  init_kubeconfig admin "$KUBE_DIR/admin.conf" "https://$api_endpoint" kubernetes-admin
  init_kubeconfig kubelet "$KUBE_DIR/kubelet.conf" "https://$api_endpoint" "system:node:$CFG_NODE_NAME"
  write_static_pods "${images[@]}"
  write_kubelet_files "$CFG_CGROUP_DRIVER" "$cluster_dns" "$pause"
  start_kubelet

  create_cluster "$api_endpoint" "$leader" "$cluster_dns"
  register_node "$CFG_NODE_NAME" control-plane "${CFG_NODE_IP:-$advertise}" "$(kubelet_version)" \
    "$(os_image)" "$(uname -r)" "$(runtime_version)" 1
  write_node_env control-plane "$api_endpoint" ""
  start_api_endpoint
  echo "[api-check] The API server is healthy"

  if ((upload_certs)); then
    CFG_CERT_KEY=${CFG_CERT_KEY:-$(random_hex64)}
    cluster_set certificate_key_sha256 "$(sha256_of "$CFG_CERT_KEY")"
    print_uploaded_certs "$CFG_CERT_KEY"
  fi
  echo "[mark-control-plane] Marking the node $CFG_NODE_NAME as control-plane by adding the labels: [node-role.kubernetes.io/control-plane node.kubernetes.io/exclude-from-external-load-balancers]"
  echo "[bootstrap-token] Using token: ${CFG_TOKENS[0]}"
  echo "[addons] Applied essential addon: CoreDNS"
  echo "[addons] Applied essential addon: kube-proxy"
  print_init_success "$api_endpoint" "${CFG_TOKENS[0]}" "$upload_certs"
}

# init_kubeconfig PHASE FILE SERVER_URL USER: kubeadm's kubeconfig phase. Preflight does not look at these files;
# this phase keeps one that is already there when it has the cluster's CA (warning when its server differs), and
# fails when it has another CA.
init_kubeconfig() {
  local phase=$1 file=$2 server=$3 user=$4 ca current_server
  if [[ ! -e $ROOT$file ]]; then
    echo "[kubeconfig] Writing \"${file##*/}\" kubeconfig file"
    write_kubeconfig "$file" "$server" "$user"
    return
  fi
  ca=$(sed -n 's/^ *certificate-authority-data: *//p' "$ROOT$file" | head -n 1)
  [[ $ca == "$(base64 -w0 "$STUB_PKI/ca.crt")" ]] ||
    kubeadm_fail "error execution phase kubeconfig/$phase: a kubeconfig file \"$file\" exists already but has got the wrong CA cert"
  current_server=$(sed -n 's/^ *server: *//p' "$ROOT$file" | head -n 1)
  if [[ $current_server != "$server" ]]; then
    echo "W0000 kubeconfig.go:230] a kubeconfig file \"$file\" exists already but has an unexpected API Server URL: expected: $server, got: $current_server" >&2
  fi
  echo "[kubeconfig] Using existing kubeconfig file: \"$file\""
}

# The kubelet's version as it reports it ("Kubernetes v1.32.3"), "-" when there is no kubelet.
kubelet_version() {
  local version
  version=$(kubelet --version 2>/dev/null | awk '{ print $2 }') || true
  printf '%s\n' "${version:--}"
}

print_uploaded_certs() {
  echo "[upload-certs] Storing the certificates in Secret \"kubeadm-certs\" in the \"kube-system\" Namespace"
  echo "[upload-certs] Using certificate key:"
  echo "$1"
}

print_init_success() {
  local endpoint=$1 token=$2 upload_certs=$3 hash join
  hash=$(ca_cert_hash "$ROOT$KUBE_DIR/pki/ca.crt")
  join="kubeadm join $endpoint --token $token \\"$'\n\t'"--discovery-token-ca-cert-hash $hash"
  cat <<EOF

Your Kubernetes control-plane has initialized successfully!

To start using your cluster, you need to run the following as a regular user:

  mkdir -p \$HOME/.kube
  sudo cp -i $KUBE_DIR/admin.conf \$HOME/.kube/config
  sudo chown \$(id -u):\$(id -g) \$HOME/.kube/config

Alternatively, if you are the root user, you can run:

  export KUBECONFIG=$KUBE_DIR/admin.conf

You should now deploy a pod network to the cluster.
Run "kubectl apply -f [podnetwork].yaml" with one of the options listed at:
  https://kubernetes.io/docs/concepts/cluster-administration/addons/

EOF
  if [[ -n $CFG_CP_ENDPOINT ]] && ((upload_certs)); then
    cat <<EOF
You can now join any number of control-plane nodes running the following command on each as root:

  $join \\
	--control-plane --certificate-key $CFG_CERT_KEY

Please note that the certificate-key gives access to cluster sensitive data, keep it secret!
As a safeguard, uploaded-certs will be deleted in two hours; If necessary, you can use
"kubeadm init phase upload-certs --upload-certs" to reload certs afterward.

EOF
  elif [[ -n $CFG_CP_ENDPOINT ]]; then
    cat <<EOF
You can now join any number of control-plane nodes by copying certificate authorities
and service account keys on each node and then running the following as root:

  $join \\
	--control-plane

EOF
  fi
  cat <<EOF
Then you can join any number of worker nodes by running the following on each as root:

$join
EOF
}
