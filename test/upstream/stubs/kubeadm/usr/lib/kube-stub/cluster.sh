# shellcheck shell=bash
# The cluster's records, kept by the first control plane under /var/lib/kube-stub/cluster (the stub's etcd):
#   cluster.env        settings (KEY=value): kubernetes_version api_endpoint control_plane_endpoint leader
#                      cluster_dns cgroup_driver certificate_key_sha256 network_ready, and the image settings
#                      of the ClusterConfiguration (image_repository dns_repository dns_tag etcd_repository
#                      etcd_tag etcd_external), which `kubeadm upgrade` reads as kubeadm reads kubeadm-config
#   ca.crt             the CA that cluster-info hands to joining nodes
#   tokens             bootstrap tokens: <token><TAB><expiry, epoch seconds, 0 = never><TAB><description>
#   images/<group>     images the nodes pull: control-plane, node (every kubelet), addons (applied workloads)
#   nodes/<name>       one registered node (KEY=value): role ip kubelet_version os_image kernel runtime images_ok
#                      registered, control_plane_version (control planes: the version of its static Pods),
#                      unschedulable (1 when cordoned), kubelet_refused (why the API server refused its kubelet)
#   resources          applied objects: <namespace>/<resource>/<name><TAB><digest of the object>
#   daemonsets         <namespace><TAB><name> of applied DaemonSets
#   manifests/<n>.yaml what each `kubectl apply` sent
# `kubeadm init` creates them; after that only the API handler (apiserver.sh) changes them, under a lock.

cluster_get() { kv_get "$CLUSTER_DIR/cluster.env" "$1"; }
cluster_set() { kv_set "$CLUSTER_DIR/cluster.env" "$1" "$2"; }

# create_cluster API_ENDPOINT LEADER CLUSTER_DNS: the records of a new cluster from the loaded CFG_* settings.
create_cluster() {
  local api_endpoint=$1 leader=$2 cluster_dns=$3
  rm -rf "$CLUSTER_DIR"
  mkdir -p "$CLUSTER_DIR/nodes" "$CLUSTER_DIR/images" "$CLUSTER_DIR/manifests"
  cp "$STUB_PKI/ca.crt" "$CLUSTER_DIR/ca.crt"
  cat >"$CLUSTER_DIR/cluster.env" <<EOF
kubernetes_version=$CFG_VERSION
api_endpoint=$api_endpoint
control_plane_endpoint=$CFG_CP_ENDPOINT
leader=$leader
pod_subnet=$CFG_POD_SUBNET
service_subnet=$CFG_SERVICE_SUBNET
cluster_dns=$cluster_dns
cgroup_driver=$CFG_CGROUP_DRIVER
certificate_key_sha256=
network_ready=0
image_repository=$CFG_IMAGE_REPO
dns_repository=$CFG_DNS_REPO
dns_tag=$CFG_DNS_TAG
etcd_repository=$CFG_ETCD_REPO
etcd_tag=$CFG_ETCD_TAG
etcd_external=$CFG_ETCD_EXTERNAL
EOF
  : >"$CLUSTER_DIR/tokens"
  local i
  for i in "${!CFG_TOKENS[@]}"; do
    add_token "${CFG_TOKENS[i]}" "${CFG_TOKEN_TTLS[i]}" "${CFG_TOKEN_DESCRIPTIONS[i]}"
  done
  control_plane_images >"$CLUSTER_DIR/images/control-plane"
  node_images >"$CLUSTER_DIR/images/node"
  : >"$CLUSTER_DIR/images/addons"
  : >"$CLUSTER_DIR/resources"
  : >"$CLUSTER_DIR/daemonsets"
}

# add_token TOKEN TTL_SECONDS DESCRIPTION: adds or renews a bootstrap token (TTL 0 = it never expires).
# Tokens reach helpers through the environment or stdin, never as arguments (see api_exchange).
add_token() {
  local expires=0 rest
  (($2)) && expires=$(($(date +%s) + $2))
  rest=$(TOKEN=$1 awk -F'\t' '$1 != ENVIRON["TOKEN"]' "$CLUSTER_DIR/tokens")
  printf '%s\n' ${rest:+"$rest"} "$1"$'\t'"$expires"$'\t'"$3" >"$CLUSTER_DIR/tokens.new"
  mv "$CLUSTER_DIR/tokens.new" "$CLUSTER_DIR/tokens"
}

# The tokens that have not expired (the real cluster's token cleaner deletes the others), as stored.
valid_tokens() {
  awk -F'\t' -v now="$(date +%s)" '$2 == 0 || $2 > now' "$CLUSTER_DIR/tokens"
}

token_known() {
  local token
  while IFS=$'\t' read -r token _; do
    [[ $token == "$1" ]] && return 0
  done < <(valid_tokens)
  return 1
}

# delete_token ID: removes the token with that ID (expired or not), as deleting its Secret does; fails when
# there is none.
delete_token() {
  local rest
  grep -q "^$1\." "$CLUSTER_DIR/tokens" || return 1
  rest=$(grep -v "^$1\." "$CLUSTER_DIR/tokens" || true)
  printf '%s\n' ${rest:+"$rest"} >"$CLUSTER_DIR/tokens.new"
  mv "$CLUSTER_DIR/tokens.new" "$CLUSTER_DIR/tokens"
}

# The valid token whose ID (the part before the dot) is ID; fails when there is none.
token_with_id() {
  valid_tokens | cut -f1 | grep -m 1 "^$1\."
}

# register_node NAME ROLE IP KUBELET_VERSION OS_IMAGE KERNEL RUNTIME IMAGES_OK: a control plane's static Pods
# run the cluster's version.
register_node() {
  local control_plane_version=""
  [[ $2 == control-plane ]] && control_plane_version=$(cluster_get kubernetes_version)
  cat >"$CLUSTER_DIR/nodes/$1" <<EOF
name=$1
role=$2
ip=$3
kubelet_version=$4
os_image=$5
kernel=$6
runtime=$7
images_ok=$8
registered=$(date +%s)
control_plane_version=$control_plane_version
unschedulable=0
kubelet_refused=
EOF
}

node_get() { kv_get "$CLUSTER_DIR/nodes/$1" "$2"; }
node_set() { kv_set "$CLUSTER_DIR/nodes/$1" "$2" "$3"; }

# Ready once a pod network is applied (the CNI DaemonSet), the node could pull what its pods need, and the API
# server did not refuse its kubelet.
node_status() {
  if [[ $(cluster_get network_ready) == 1 && $(node_get "$1" images_ok) == 1 && -z $(node_get "$1" kubelet_refused) ]]; then
    echo Ready
  else
    echo NotReady
  fi
}

node_names() {
  local file
  for file in "$CLUSTER_DIR"/nodes/*; do
    [[ -f $file ]] && printf '%s\n' "${file##*/}"
  done
  return 0
}
