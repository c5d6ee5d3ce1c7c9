#!/bin/bash
# One connection to the stub API server: kube-stub-apiserver@.service runs this per accepted TCP connection on
# 6443 (systemd socket activation, Accept=yes), the connection being stdin/stdout. It reads one request line
# (protocol in api.sh), answers and exits. The host that ran `kubeadm init` answers from its cluster records; a
# control plane that joined relays to that host, where the only copy of the records lives.
set -euo pipefail

STUB_LIB_DIR=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
for part in lib images runtime api cluster; do
  # shellcheck source=/dev/null
  source "$STUB_LIB_DIR/$part.sh"
done

# Namespaces every cluster starts with.
readonly BUILTIN_NAMESPACES=" default kube-system kube-public kube-node-lease "
# Kinds that live outside namespaces (the ones CNI and add-on manifests use).
readonly CLUSTER_SCOPED_KINDS=" Namespace ClusterRole ClusterRoleBinding CustomResourceDefinition PriorityClass StorageClass PersistentVolume Node APIService MutatingWebhookConfiguration ValidatingWebhookConfiguration IngressClass RuntimeClass CSIDriver PodSecurityPolicy "
readonly POD_NAME_ALPHABET=bcdfghjklmnpqrstvwxz2456789

main() {
  local request leader reply
  local -a fields
  IFS= read -r -t 10 request || exit 0
  request=${request%$'\r'}
  IFS=$'\t' read -r -a fields <<<"$request"
  stub_log kube-stub-apiserver "" "" "${fields[0]:-}" "from=${REMOTE_ADDR:-local}"
  if [[ -d $CLUSTER_DIR ]]; then
    exec 8>>"$CLUSTER_DIR/.lock"
    flock 8
    serve "${fields[@]}"
  else
    leader=$(kv_get "$NODE_ENV" leader)
    if [[ -n $leader ]]; then
      if reply=$(api_exchange "$leader" "$request"); then
        printf '%s\n' "$reply"
      else
        reply_error "the first control plane $leader, which holds the cluster records, is unreachable: ${reply##*: }"
      fi
    else
      reply_error "no cluster on this host: kubeadm init has not run here"
    fi
  fi
}

reply_ok() {
  echo OK
  if (($#)); then printf '%s\n' "$@"; fi
}

reply_error() { printf 'ERROR %s\n' "$*"; }

serve() {
  local verb=${1:-}
  (($#)) && shift
  case $verb in
    VERSION) reply_ok "$(cluster_get kubernetes_version)" ;;
    CLUSTER-INFO) cluster_info "$@" ;;
    CONFIG) cluster_config "$@" ;;
    JOIN) join_node "$@" ;;
    NODES) list_nodes ;;
    PODS) list_pods ;;
    APPLY) apply_manifest "$@" ;;
    TOKEN-CREATE) create_token "$@" ;;
    TOKENS) reply_ok "$(valid_tokens)" ;;
    TOKEN-DELETE) remove_token "$@" ;;
    UPLOAD-CERTS) upload_certs "$@" ;;
    CLUSTER-CONFIGURATION) cluster_configuration ;;
    KUBELET) kubelet_status "$@" ;;
    CORDON) cordon_node "$@" ;;
    UPGRADE) upgrade_cluster "$@" ;;
    UPGRADE-NODE) upgrade_node_record "$@" ;;
    *) reply_error "unknown request \"$verb\"" ;;
  esac
}

# CLUSTER-INFO TOKEN_ID: the CA and its signature with the token of that ID (kube-public/cluster-info).
cluster_info() {
  local id=${1:-} token
  if [[ ! $id =~ ^[a-z0-9]{6}$ ]] || ! token=$(token_with_id "$id"); then
    reply_error "could not find a JWS signature in the cluster-info ConfigMap for token ID \"$id\""
    return
  fi
  reply_ok "$(cluster_info_signature "$token" "$CLUSTER_DIR/ca.crt")" "$(cat "$CLUSTER_DIR/ca.crt")"
}

# CONFIG TOKEN: what a joining node needs from kubeadm-config and kubelet-config, and the images it pulls.
cluster_config() {
  local key
  if ! token_known "${1:-}"; then
    reply_error "Unauthorized"
    return
  fi
  echo OK
  for key in kubernetes_version api_endpoint control_plane_endpoint leader cluster_dns cgroup_driver; do
    printf '%s=%s\n' "$key" "$(cluster_get "$key")"
  done
  printf 'pause_image=%s\n' "$(grep '/pause:' "$CLUSTER_DIR/images/control-plane")"
  sed 's/^/control_plane_image=/' "$CLUSTER_DIR/images/control-plane"
  sed 's/^/node_image=/' "$CLUSTER_DIR/images/node"
  sed 's/^/addon_image=/' "$CLUSTER_DIR/images/addons"
}

# JOIN TOKEN NAME ROLE IP CERT_KEY_SHA256 KUBELET_VERSION OS_IMAGE KERNEL RUNTIME IMAGES_OK: TLS bootstrap,
# control-plane certificate download and Node registration in one.
join_node() {
  (($# == 10)) || { reply_error "malformed JOIN request"; return; }
  local token=$1 name=$2 role=$3 ip=$4 key_hash=$5 stored
  token_known "$token" || { reply_error "Unauthorized"; return; }
  [[ $name =~ $DNS1123_SUBDOMAIN ]] || { reply_error "invalid node name \"$name\""; return; }
  [[ $role == worker || $role == control-plane ]] || { reply_error "invalid role \"$role\""; return; }
  if [[ $role == control-plane && $key_hash != - ]]; then
    stored=$(cluster_get certificate_key_sha256)
    if [[ -z $stored ]]; then
      reply_error "error downloading certs: error downloading the secret: Secret \"kubeadm-certs\" was not found in the \"kube-system\" Namespace. This Secret might have expired. Please, run \`kubeadm init phase upload-certs --upload-certs\` on a control plane to generate a new one"
      return
    fi
    [[ $key_hash == "$stored" ]] ||
      { reply_error "error downloading certs: error decoding certs: cipher: message authentication failed (wrong certificate key)"; return; }
  fi
  if [[ -f $CLUSTER_DIR/nodes/$name && $(node_get "$name" ip) != "$ip" ]]; then
    reply_error "a Node with name \"$name\" and status \"$(node_status "$name")\" already exists in the cluster (address $(node_get "$name" ip)). You must delete the existing Node or change the name of this new joining Node"
    return
  fi
  register_node "$name" "$role" "$ip" "$6" "$7" "$8" "$9" "${10}"
  reply_ok
}

# NODES: NAME STATUS ROLE REGISTERED(epoch) VERSION IP OS-IMAGE KERNEL RUNTIME UNSCHEDULABLE(0|1)
# CONTROL-PLANE-VERSION ("-" on workers), TAB-separated, one node a line.
list_nodes() {
  local name key value
  echo OK
  for name in $(node_names); do
    printf '%s\t%s' "$name" "$(node_status "$name")"
    for key in role registered kubelet_version ip os_image kernel runtime unschedulable control_plane_version; do
      value=$(node_get "$name" "$key")
      case $key in
        unschedulable) value=${value:-0} ;;
        control_plane_version) value=${value:--} ;;
      esac
      printf '\t%s' "$value"
    done
    printf '\n'
  done
}

# CLUSTER-CONFIGURATION: what `kubeadm upgrade` reads from the kubeadm-config ConfigMap (KEY=value lines).
cluster_configuration() {
  echo OK
  grep -v '^certificate_key_sha256=' "$CLUSTER_DIR/cluster.env"
}

# KUBELET NAME VERSION: a kubelet (re)started and reports its version in its Node's status.nodeInfo. The version
# skew policy (https://kubernetes.io/releases/version-skew-policy/#kubelet): "kubelet must not be newer than
# kube-apiserver". The stub API server enforces it: it refuses such a kubelet, which keeps the Node NotReady
# (the refusal stays in the node record, and the kubelet logs it).
kubelet_status() {
  local name=${1:-} version=${2:-} server
  [[ -f $CLUSTER_DIR/nodes/$name ]] || { reply_error "nodes \"$name\" not found"; return; }
  [[ $version =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || { reply_error "invalid kubelet version \"$version\""; return; }
  server=$(cluster_get kubernetes_version)
  if version_newer "$version" "$server"; then
    node_set "$name" kubelet_refused "kubelet $version is newer than kube-apiserver $server"
    reply_error "Forbidden: node \"$name\": kubelet version $version is newer than the API server's $server: the version skew policy does not allow a kubelet newer than kube-apiserver"
    return
  fi
  node_set "$name" kubelet_version "$version"
  node_set "$name" kubelet_refused ""
  reply_ok
}

# CORDON NAME 1|0: sets spec.unschedulable; answers "cordoned", "uncordoned" or "already ..." and then the
# DaemonSet-managed pods on the node ("NAMESPACE/POD" lines), which drain has to know about.
cordon_node() {
  local name=${1:-} want=${2:-} verb namespace daemonset
  [[ -f $CLUSTER_DIR/nodes/$name ]] || { reply_error "(NotFound): nodes \"$name\" not found"; return; }
  [[ $want == 0 || $want == 1 ]] || { reply_error "malformed CORDON request"; return; }
  verb=cordoned
  [[ $want == 0 ]] && verb=uncordoned
  [[ $(node_get "$name" unschedulable) == "$want" ]] && verb="already $verb"
  node_set "$name" unschedulable "$want"
  echo OK
  echo "$verb"
  echo "kube-system/kube-proxy-$(pod_suffix "kube-proxy/$name" 5)"
  while IFS=$'\t' read -r namespace daemonset; do
    echo "$namespace/$daemonset-$(pod_suffix "$daemonset/$name" 5)"
  done <"$CLUSTER_DIR/daemonsets"
}

# UPGRADE VERSION NODE IMAGE...: `kubeadm upgrade apply` on NODE moved the cluster to VERSION: the API server
# (kubeadm-config's kubernetesVersion) and the images every node and control plane pulls from now on (kube-proxy's
# DaemonSet is updated by apply's addon phase).
upgrade_cluster() {
  local version=${1:-} name=${2:-}
  (($# >= 3)) || { reply_error "malformed UPGRADE request"; return; }
  shift 2
  [[ -f $CLUSTER_DIR/nodes/$name ]] || { reply_error "nodes \"$name\" not found"; return; }
  printf '%s\n' "$@" >"$CLUSTER_DIR/images/control-plane"
  grep -E '/(kube-proxy|pause):' "$CLUSTER_DIR/images/control-plane" >"$CLUSTER_DIR/images/node" || true
  cluster_set kubernetes_version "$version"
  node_set "$name" control_plane_version "$version"
  reply_ok
}

# UPGRADE-NODE NAME VERSION: `kubeadm upgrade node` moved that control plane's static Pods to VERSION.
upgrade_node_record() {
  [[ -f $CLUSTER_DIR/nodes/${1:-} ]] || { reply_error "nodes \"${1:-}\" not found"; return; }
  node_set "$1" control_plane_version "${2:-}"
  reply_ok
}

# PODS: NAMESPACE NAME READY STATUS RESTARTS CREATED(epoch) of the pods such a cluster would run.
list_pods() {
  local name created component status namespace daemonset network first=""
  network=$(cluster_get network_ready)
  echo OK
  for name in $(node_names); do
    created=$(node_get "$name" registered)
    first=${first:-$created}
    if [[ $(node_get "$name" role) == control-plane ]]; then
      for component in etcd kube-apiserver kube-controller-manager kube-scheduler; do
        pod_row kube-system "$component-$name" Running "$created"
      done
    fi
    status=Running
    [[ $(node_get "$name" images_ok) == 1 ]] || status=ImagePullBackOff
    pod_row kube-system "kube-proxy-$(pod_suffix "kube-proxy/$name" 5)" "$status" "$created"
    while IFS=$'\t' read -r namespace daemonset; do
      pod_row "$namespace" "$daemonset-$(pod_suffix "$daemonset/$name" 5)" "$status" "$created"
    done <"$CLUSTER_DIR/daemonsets"
  done
  status=Pending
  [[ $network == 1 ]] && status=Running
  for name in a b; do
    pod_row kube-system "coredns-$(pod_suffix coredns 10)-$(pod_suffix "coredns/$name" 5)" "$status" "$first"
  done
}

pod_row() {
  local ready=0/1
  [[ $3 == Running ]] && ready=1/1
  printf '%s\t%s\t%s\t%s\t0\t%s\n' "$1" "$2" "$ready" "$3" "$4"
}

# pod_suffix SEED LENGTH: a stable random-looking pod name suffix, in the alphabet Kubernetes uses for them.
pod_suffix() {
  local hex out="" i
  hex=$(sha256_of "$1")
  for ((i = 0; i < $2; i++)); do
    out+=${POD_NAME_ALPHABET:$((16#${hex:i*2:2} % ${#POD_NAME_ALPHABET})):1}
  done
  printf '%s\n' "$out"
}

# APPLY BASE64_MANIFEST: records the manifest and each object in it. Answers one line per object
# ("created|configured|unchanged<TAB>resource/name" or "error<TAB>reason<TAB>message") and one
# "image<TAB>ref" per container image the manifest names, for kubectl to pull.
apply_manifest() {
  local count file doc errors
  count=$(find "$CLUSTER_DIR/manifests" -name '*.yaml' | wc -l)
  file=$CLUSTER_DIR/manifests/$((count + 1)).yaml
  if ! base64 -d <<<"${1:-}" >"$file" 2>/dev/null; then
    rm -f "$file"
    reply_error "the manifest is not valid base64"
    return
  fi
  errors=$(mktemp)
  if ! FLAT=$(awk -f "$STUB_LIB/yaml-flatten.awk" "$file" 2>"$errors"); then
    reply_error "error parsing manifest: error converting YAML to JSON: yaml: $(cat "$errors")"
    rm -f "$errors"
    return
  fi
  rm -f "$errors"
  echo OK
  for doc in $(flat_docs); do apply_object "$doc"; done
  flat_images "" | sort -u | sed 's/^/image\t/'
}

apply_object() {
  local doc=$1 kind api name namespace resource key digest old verb
  kind=$(flat_get "$doc" kind)
  api=$(flat_get "$doc" apiVersion)
  name=$(flat_get "$doc" metadata.name)
  namespace=$(flat_get "$doc" metadata.namespace)
  if [[ -z $kind || -z $api ]]; then
    printf 'error\tBadRequest\terror validating data: apiVersion or kind not set in document %d\n' $((doc + 1))
    return
  fi
  [[ $kind == List ]] && { printf 'error\tBadRequest\tthe kube-stub cannot apply kind List\n'; return; }
  [[ -n $name ]] || { printf 'error\tInvalid\t%s in document %d: resource name may not be empty\n' "$kind" $((doc + 1)); return; }
  resource=${kind,,}
  [[ $api == */* ]] && resource+=.${api%/*}
  resource+=/$name
  if [[ $CLUSTER_SCOPED_KINDS == *" $kind "* ]]; then
    namespace=""
  else
    namespace=${namespace:-default}
    namespace_exists "$namespace" || { printf 'error\tNotFound\tnamespaces "%s" not found\n' "$namespace"; return; }
  fi
  key=$namespace/$resource
  digest=$(flat_doc_lines "$doc" | sha256sum | cut -d' ' -f1)
  old=$(awk -F'\t' -v k="$key" '$1 == k { print $2 }' "$CLUSTER_DIR/resources")
  if [[ -z $old ]]; then
    verb=created
    printf '%s\t%s\n' "$key" "$digest" >>"$CLUSTER_DIR/resources"
  elif [[ $old == "$digest" ]]; then
    verb=unchanged
  else
    verb=configured
    awk -F'\t' -v k="$key" -v d="$digest" 'BEGIN { OFS = "\t" } $1 == k { $2 = d } { print }' \
      "$CLUSTER_DIR/resources" >"$CLUSTER_DIR/resources.new"
    mv "$CLUSTER_DIR/resources.new" "$CLUSTER_DIR/resources"
  fi
  printf '%s\t%s\n' "$verb" "$resource"
  [[ $kind == DaemonSet ]] && record_daemonset "$doc" "$namespace" "$name"
  return 0
}

namespace_exists() {
  [[ $BUILTIN_NAMESPACES == *" $1 "* ]] || grep -q "^/namespace/$1"$'\t' "$CLUSTER_DIR/resources"
}

# A DaemonSet runs on every node: its images become ones each node pulls, and the first one (the CNI's agent)
# makes the pod network ready.
record_daemonset() {
  local doc=$1 namespace=$2 name=$3
  grep -qxF -- "$namespace"$'\t'"$name" "$CLUSTER_DIR/daemonsets" ||
    printf '%s\t%s\n' "$namespace" "$name" >>"$CLUSTER_DIR/daemonsets"
  { cat "$CLUSTER_DIR/images/addons"; flat_images "$doc"; } | sort -u >"$CLUSTER_DIR/images/addons.new"
  mv "$CLUSTER_DIR/images/addons.new" "$CLUSTER_DIR/images/addons"
  cluster_set network_ready 1
}

# flat_images DOC: the normalized container images of one document ("" = all documents).
flat_images() {
  local image
  awk -F'\t' -v d="$1" '(d == "" || $1 == d) && $2 ~ /(^|\.)(initContainers|containers)\.[0-9]+\.image$/ { print $3 }' \
    <<<"$FLAT" | while read -r image; do normalize_image_ref "$image"; done
}

# TOKEN-CREATE TOKEN TTL DESCRIPTION ("-" for none)
create_token() {
  local ttl description=${3:--}
  [[ ${1:-} =~ $TOKEN_FORMAT ]] || { reply_error "invalid bootstrap token"; return; }
  ttl=$(duration_seconds "${2:-}") || { reply_error "invalid token TTL \"${2:-}\""; return; }
  [[ $description == - ]] && description=""
  add_token "$1" "$ttl" "$description"
  reply_ok
}

# TOKEN-DELETE TOKEN_ID
remove_token() {
  [[ ${1:-} =~ ^[a-z0-9]{6}$ ]] || { reply_error "invalid bootstrap token ID"; return; }
  if delete_token "$1"; then reply_ok; else reply_error "secrets \"bootstrap-token-$1\" not found"; fi
}

# UPLOAD-CERTS SHA256_OF_CERTIFICATE_KEY
upload_certs() {
  [[ ${1:-} =~ ^[0-9a-f]{64}$ ]] || { reply_error "invalid certificate key hash"; return; }
  cluster_set certificate_key_sha256 "$1"
  reply_ok
}

main "$@"
