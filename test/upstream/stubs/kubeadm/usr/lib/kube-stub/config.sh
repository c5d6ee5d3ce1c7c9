# shellcheck shell=bash disable=SC2034  # the CFG_* and JOIN_* variables set here are read by the other modules
# Reading and validating kubeadm configuration (a --config file, or the equivalent command-line flags, which are
# first turned into the same flattened form), into CFG_* (cluster and node settings) and JOIN_* variables.

# The kubeadm.k8s.io API versions this kubeadm reads: v1beta3 up to 1.35, v1beta4 from 1.31.
kubeadm_api_versions() {
  local own
  own=$(minor_of "$KUBE_VERSION")
  if ((own <= 35)); then echo kubeadm.k8s.io/v1beta3; fi
  if ((own >= 31)); then echo kubeadm.k8s.io/v1beta4; fi
}

newest_kubeadm_api() { kubeadm_api_versions | tail -n 1; }

check_kubeadm_api_version() {
  local api=$1 kind=$2
  kubeadm_api_versions | grep -qxF -- "$api" && return 0
  case $api in
    kubeadm.k8s.io/v1beta1 | kubeadm.k8s.io/v1beta2 | kubeadm.k8s.io/v1beta3)
      kubeadm_fail "your configuration file uses an old API spec: \"$api\" (kind: \"$kind\"). Please use an older kubeadm instead and run 'kubeadm config migrate --old-config old.yaml --new-config new.yaml', which will write the new, similar spec using a newer API version."
      ;;
    *)
      kubeadm_fail "no kind \"$kind\" is registered for version \"$api\" in scheme \"k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm/scheme/scheme.go:31\""
      ;;
  esac
}

# v1beta4 turned extraArgs/kubeletExtraArgs from maps into lists of {name, value}; the wrong shape fails decoding.
check_extra_args() {
  local doc=$1 api=$2 want_list=0 field
  [[ $api == */v1beta4 ]] && want_list=1
  field=$(flat_doc_lines "$doc" | awk -F'\t' -v want_list="$want_list" '{
      n = split($1, part, ".")
      for (i = 1; i < n; i++)
        if (part[i] ~ /^(extraArgs|kubeletExtraArgs)$/ && (part[i + 1] ~ /^[0-9]+$/) != want_list) { print $1; exit }
    }')
  [[ -z $field ]] && return 0
  if ((want_list)); then
    kubeadm_fail "error unmarshaling JSON: while decoding JSON: json: cannot unmarshal object into Go struct field of type []v1beta4.Arg (\"$field\": $api wants extra arguments as a list of name/value pairs)"
  fi
  kubeadm_fail "error unmarshaling JSON: while decoding JSON: json: cannot unmarshal array into Go struct field of type map[string]string (\"$field\": $api wants extra arguments as a map)"
}

# Validates every document's apiVersion and kind and sets DOC_INIT, DOC_CLUSTER, DOC_JOIN, DOC_KUBELET
# (document numbers; empty when absent). WANTED lists the kubeadm kinds the command uses; others are ignored.
classify_documents() {
  local file=$1 wanted=$2 doc kind api
  DOC_INIT="" DOC_CLUSTER="" DOC_JOIN="" DOC_KUBELET=""
  for doc in $(flat_docs); do
    kind=$(flat_get "$doc" kind)
    api=$(flat_get "$doc" apiVersion)
    [[ -n $kind ]] || kubeadm_fail "Object 'Kind' is missing in document $((doc + 1)) of \"$file\""
    [[ -n $api ]] || kubeadm_fail "Object 'apiVersion' is missing in document $((doc + 1)) of \"$file\""
    case $kind in
      InitConfiguration | ClusterConfiguration | JoinConfiguration | ResetConfiguration | UpgradeConfiguration)
        check_kubeadm_api_version "$api" "$kind"
        check_extra_args "$doc" "$api"
        if [[ " $wanted " != *" $kind "* ]]; then
          echo "[config] WARNING: Ignored configuration document with GroupVersionKind $api, Kind=$kind" >&2
          continue
        fi
        case $kind in
          InitConfiguration) DOC_INIT=$doc ;;
          ClusterConfiguration) DOC_CLUSTER=$doc ;;
          JoinConfiguration) DOC_JOIN=$doc ;;
        esac
        ;;
      KubeletConfiguration)
        [[ $api == kubelet.config.k8s.io/v1beta1 ]] ||
          kubeadm_fail "no kind \"$kind\" is registered for version \"$api\""
        DOC_KUBELET=$doc
        ;;
      KubeProxyConfiguration)
        [[ $api == kubeproxy.config.k8s.io/v1alpha1 ]] ||
          kubeadm_fail "no kind \"$kind\" is registered for version \"$api\""
        ;;
      *) echo "[config] WARNING: Ignored YAML document with GroupVersionKind $api, Kind=$kind" >&2 ;;
    esac
  done
}

is_ip() {
  [[ $1 =~ ^([0-9]{1,3}\.){3}[0-9]{1,3}$ || ($1 == *:* && $1 =~ ^[0-9a-fA-F:.]+$) ]]
}

# A comma-separated list of CIDRs (dual-stack subnets are allowed).
check_cidrs() {
  local field=$1 value=$2 cidr
  local -a cidrs
  IFS=, read -r -a cidrs <<<"$value"
  for cidr in "${cidrs[@]}"; do
    if ! is_ip "${cidr%/*}" || [[ ! $cidr =~ /[0-9]{1,3}$ ]]; then
      kubeadm_fail "$field: Invalid value: \"$value\": couldn't parse subnet"
    fi
  done
}

# The kube-dns service address: the 10th address of the (first, IPv4) service subnet, as kubeadm picks it.
cluster_dns_ip() {
  local base=${1%%,*}
  base=${base%/*}
  [[ $base =~ ^([0-9]+)\.([0-9]+)\.([0-9]+)\.([0-9]+)$ ]] || return 0
  local n=$((BASH_REMATCH[1] << 24 | BASH_REMATCH[2] << 16 | BASH_REMATCH[3] << 8 | BASH_REMATCH[4]))
  n=$((n + 10))
  printf '%d.%d.%d.%d\n' $((n >> 24 & 255)) $((n >> 16 & 255)) $((n >> 8 & 255)) $((n & 255))
}

# Node settings shared by InitConfiguration and JoinConfiguration (nodeRegistration.*).
load_node_registration() {
  local doc=$1 api
  api=$(flat_get "$doc" apiVersion)
  CFG_NODE_NAME=$(flat_get "$doc" nodeRegistration.name)
  [[ -n $CFG_NODE_NAME ]] || CFG_NODE_NAME=$(uname -n | tr '[:upper:]' '[:lower:]')
  [[ $CFG_NODE_NAME =~ $DNS1123_SUBDOMAIN && ${#CFG_NODE_NAME} -le 253 ]] ||
    kubeadm_fail "nodeRegistration.name: Invalid value: \"$CFG_NODE_NAME\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
  CFG_CRI_SOCKET=$(flat_get "$doc" nodeRegistration.criSocket)
  CFG_PULL_POLICY=$(flat_get "$doc" nodeRegistration.imagePullPolicy)
  CFG_PULL_POLICY=${CFG_PULL_POLICY:-IfNotPresent}
  [[ $CFG_PULL_POLICY =~ ^(Always|IfNotPresent|Never)$ ]] ||
    kubeadm_fail "nodeRegistration.imagePullPolicy: Unsupported value: \"$CFG_PULL_POLICY\": supported values: \"Always\", \"IfNotPresent\", \"Never\""
  CFG_NODE_IP=$(node_ip_arg "$doc" "$api")
}

# --node-ip from kubeletExtraArgs: a name/value list in v1beta4, a map before.
node_ip_arg() {
  local doc=$1 api=$2 i count
  if [[ $api == */v1beta4 ]]; then
    count=$(flat_count "$doc" nodeRegistration.kubeletExtraArgs)
    for ((i = 0; i < count; i++)); do
      if [[ $(flat_get "$doc" "nodeRegistration.kubeletExtraArgs.$i.name") == node-ip ]]; then
        flat_get "$doc" "nodeRegistration.kubeletExtraArgs.$i.value"
        return 0
      fi
    done
  else
    flat_get "$doc" nodeRegistration.kubeletExtraArgs.node-ip
  fi
}

# localAPIEndpoint (InitConfiguration) or controlPlane.localAPIEndpoint (JoinConfiguration).
load_api_endpoint() {
  local doc=$1 prefix=$2
  CFG_ADVERTISE=$(flat_get "$doc" "${prefix}advertiseAddress")
  CFG_BIND_PORT=$(flat_get "$doc" "${prefix}bindPort")
  if [[ -n $CFG_ADVERTISE ]] && ! is_ip "$CFG_ADVERTISE"; then
    kubeadm_fail "${prefix}advertiseAddress: Invalid value: \"$CFG_ADVERTISE\": cannot parse IP address"
  fi
  [[ -z $CFG_BIND_PORT || $CFG_BIND_PORT == "$API_PORT" ]] ||
    kubeadm_fail "${prefix}bindPort: Invalid value: \"$CFG_BIND_PORT\": the kube-stub API endpoint listens on $API_PORT only"
}

# ClusterConfiguration: the settings init checks and records for the whole cluster.
load_cluster_configuration() {
  local doc=$1 version
  version=$(flat_get "$doc" kubernetesVersion)
  [[ -n $version ]] ||
    kubeadm_fail "kubernetesVersion: Required value: the kube-stub kubeadm does not look versions up on the internet; set kubernetesVersion: $KUBE_VERSION"
  CFG_VERSION=$(normalize_kubernetes_version "$version")
  [[ $CFG_VERSION == "$KUBE_VERSION" ]] ||
    kubeadm_fail "kubernetesVersion: Invalid value: \"$version\": the kube-stub kubeadm $KUBE_VERSION deploys $KUBE_VERSION only"
  CFG_POD_SUBNET=$(flat_get "$doc" networking.podSubnet)
  [[ -n $CFG_POD_SUBNET ]] ||
    kubeadm_fail "networking.podSubnet: Required value: a pod network (e.g. flannel's 10.244.0.0/16) needs node CIDRs from the controller manager"
  check_cidrs networking.podSubnet "$CFG_POD_SUBNET"
  CFG_SERVICE_SUBNET=$(flat_get "$doc" networking.serviceSubnet)
  CFG_SERVICE_SUBNET=${CFG_SERVICE_SUBNET:-10.96.0.0/12}
  check_cidrs networking.serviceSubnet "$CFG_SERVICE_SUBNET"
  CFG_CP_ENDPOINT=$(flat_get "$doc" controlPlaneEndpoint)
  load_image_settings "$doc"
}

# The image-related ClusterConfiguration fields (also all `kubeadm config images` reads from a config).
load_image_settings() {
  local doc=$1
  CFG_IMAGE_REPO=$(flat_get "$doc" imageRepository)
  CFG_IMAGE_REPO=${CFG_IMAGE_REPO:-$DEFAULT_IMAGE_REPOSITORY}
  CFG_DNS_REPO=$(flat_get "$doc" dns.imageRepository)
  CFG_DNS_TAG=$(flat_get "$doc" dns.imageTag)
  CFG_ETCD_REPO=$(flat_get "$doc" etcd.local.imageRepository)
  CFG_ETCD_TAG=$(flat_get "$doc" etcd.local.imageTag)
  CFG_ETCD_EXTERNAL=""
  if flat_has "$doc" etcd.external; then CFG_ETCD_EXTERNAL=1; fi
  CFG_ETCD_DATA_DIR=$(flat_get "$doc" etcd.local.dataDir)
}

load_cgroup_driver() {
  CFG_CGROUP_DRIVER=""
  [[ -n $DOC_KUBELET ]] && CFG_CGROUP_DRIVER=$(flat_get "$DOC_KUBELET" cgroupDriver)
  CFG_CGROUP_DRIVER=${CFG_CGROUP_DRIVER:-systemd}
  [[ $CFG_CGROUP_DRIVER =~ ^(systemd|cgroupfs)$ ]] ||
    kubeadm_fail "cgroupDriver: Unsupported value: \"$CFG_CGROUP_DRIVER\": supported values: \"cgroupfs\", \"systemd\""
}

# load_init_config FILE_OR_EMPTY: validates what `kubeadm init` got (FLAT already holds flags when FILE is empty).
load_init_config() {
  local file=$1 doc count i token ttl
  [[ -n $file ]] && flatten_yaml_file "$file"
  classify_documents "${file:-command line}" "InitConfiguration ClusterConfiguration"
  [[ -n $DOC_CLUSTER ]] ||
    kubeadm_fail "no ClusterConfiguration in \"${file:-command line}\": the kube-stub needs kubernetesVersion and networking.podSubnet from it"
  load_cluster_configuration "$DOC_CLUSTER"
  load_cgroup_driver
  doc=${DOC_INIT:-none}
  load_node_registration "$doc"
  load_api_endpoint "$doc" localAPIEndpoint.
  mapfile -t CFG_SKIP_PHASES < <(flat_items "$doc" skipPhases)
  CFG_CERT_KEY=$(flat_get "$doc" certificateKey)
  [[ -z $CFG_CERT_KEY || $CFG_CERT_KEY =~ $CERTIFICATE_KEY_FORMAT ]] ||
    kubeadm_fail "certificateKey: Invalid value: \"$CFG_CERT_KEY\": must be 64 lowercase hexadecimal characters (32 bytes)"
  CFG_TOKENS=() CFG_TOKEN_TTLS=() CFG_TOKEN_DESCRIPTIONS=()
  count=$(flat_count "$doc" bootstrapTokens)
  for ((i = 0; i < count; i++)); do
    token=$(flat_get "$doc" "bootstrapTokens.$i.token")
    [[ -z $token || $token =~ $TOKEN_FORMAT ]] ||
      kubeadm_fail "bootstrapTokens[$i].token: Invalid value: \"$token\": the bootstrap token is invalid"
    ttl=$(flat_get "$doc" "bootstrapTokens.$i.ttl")
    ttl=$(duration_seconds "${ttl:-24h}") ||
      kubeadm_fail "bootstrapTokens[$i].ttl: Invalid value: \"$(flat_get "$doc" "bootstrapTokens.$i.ttl")\": time: invalid duration"
    CFG_TOKENS+=("${token:-$(random_token)}")
    CFG_TOKEN_TTLS+=("$ttl")
    CFG_TOKEN_DESCRIPTIONS+=("$(flat_get "$doc" "bootstrapTokens.$i.description")")
  done
  if ((count == 0)); then   # kubeadm makes one when the config has none
    CFG_TOKENS=("$(random_token)") CFG_TOKEN_TTLS=(86400) CFG_TOKEN_DESCRIPTIONS=("")
  fi
}

# load_join_config FILE_OR_EMPTY: validates what `kubeadm join` got into JOIN_* and the node CFG_* settings.
load_join_config() {
  local file=$1 doc hash unsafe
  [[ -n $file ]] && flatten_yaml_file "$file"
  classify_documents "${file:-command line}" JoinConfiguration
  [[ -n $DOC_JOIN ]] || kubeadm_fail "no JoinConfiguration in \"${file:-command line}\""
  doc=$DOC_JOIN
  load_node_registration "$doc"
  if flat_has "$doc" discovery.file; then
    kubeadm_fail "discovery.file: the kube-stub supports bootstrap token discovery only"
  fi
  JOIN_ENDPOINT=$(flat_get "$doc" discovery.bootstrapToken.apiServerEndpoint)
  [[ $JOIN_ENDPOINT =~ ^(\[[0-9a-fA-F:]+\]|[^:]+):[0-9]+$ ]] ||
    kubeadm_fail "discovery.bootstrapToken.apiServerEndpoint: Invalid value: \"$JOIN_ENDPOINT\": address must be host:port"
  JOIN_TOKEN=$(flat_get "$doc" discovery.bootstrapToken.token)
  [[ $JOIN_TOKEN =~ $TOKEN_FORMAT ]] ||
    kubeadm_fail "discovery.bootstrapToken.token: Invalid value: \"$JOIN_TOKEN\": the bootstrap token is invalid"
  mapfile -t JOIN_CA_HASHES < <(flat_items "$doc" discovery.bootstrapToken.caCertHashes)
  for hash in "${JOIN_CA_HASHES[@]}"; do
    [[ $hash =~ $CA_HASH_FORMAT ]] ||
      kubeadm_fail "discovery.bootstrapToken.caCertHashes: Invalid value: \"$hash\": invalid hash, expected \"sha256:\" and 64 lowercase hexadecimal characters"
  done
  unsafe=$(flat_get "$doc" discovery.bootstrapToken.unsafeSkipCAVerification)
  JOIN_SKIP_CA_CHECK=0
  [[ $unsafe == true ]] && JOIN_SKIP_CA_CHECK=1
  if ((${#JOIN_CA_HASHES[@]} == 0 && !JOIN_SKIP_CA_CHECK)); then
    kubeadm_fail "discovery.bootstrapToken: Invalid value: \"\": using token-based discovery without caCertHashes can be unsafe. Set unsafeSkipCAVerification as true in your kubeadm config file or pass --discovery-token-unsafe-skip-ca-verification flag to continue"
  fi
  JOIN_CONTROL_PLANE=0
  if flat_has "$doc" controlPlane; then JOIN_CONTROL_PLANE=1; fi  # also `controlPlane: {}`
  JOIN_CERT_KEY=$(flat_get "$doc" controlPlane.certificateKey)
  [[ -z $JOIN_CERT_KEY || $JOIN_CERT_KEY =~ $CERTIFICATE_KEY_FORMAT ]] ||
    kubeadm_fail "controlPlane.certificateKey: Invalid value: \"$JOIN_CERT_KEY\": must be 64 lowercase hexadecimal characters (32 bytes)"
  load_api_endpoint "$doc" controlPlane.localAPIEndpoint.
}

# --- flags standing in for a config file ---------------------------------------------------------------------

# flat_add DOC PATH VALUE: adds a line to FLAT (nothing for an empty VALUE).
flat_add() {
  [[ -n $3 ]] || return 0
  FLAT+=$1$'\t'$2$'\t'$3$'\n'
}

# Fails like kubeadm when --config is combined with flags that belong in the file.
refuse_mixed_flags() {
  local config=$1
  shift
  [[ -n $config && $# -gt 0 ]] || return 0
  kubeadm_fail "can not mix '--config' with arguments [$(IFS=' '; echo "$*")]"
}
