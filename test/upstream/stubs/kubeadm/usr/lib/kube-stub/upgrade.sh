# shellcheck shell=bash disable=SC2034  # CFG_* set here are read by images.sh and node.sh
# `kubeadm upgrade plan|apply|node`, after kubeadm's sources (kubernetes/kubernetes, cmd/kubeadm/app):
#   cmd/upgrade/plan.go             plan [version]: the cluster's versions and the upgrade table; it enforces no
#                                   version policy (that is apply's preflight) and exits 0 for any version kubeadm
#                                   can parse, with "Note: Before you can perform this upgrade, you have to update
#                                   kubeadm to ..." when kubeadm is older than the target.
#   cmd/phases/upgrade/apply/preflight.go
#                                   apply <version>: cluster health, then phases/upgrade/policy.go's
#                                   EnforceVersionPolicies (messages below are its own), confirmation unless
#                                   -y/-f, then the image pull of `kubeadm config images pull` (RunPullImagesCheck)
#   cmd/phases/upgrade/node/*.go    node: on a control plane (kube-apiserver.yaml present) the images and static
#                                   Pods at the cluster's version; on every node the kubelet config rewritten
#                                   (backed up first, as kubeletconfig.go does).
# The cluster version lives in the first control plane's records (cluster.env kubernetes_version), as kubeadm's in
# the kubeadm-config ConfigMap; `apply` moves it (UPGRADE request) after this node's static Pods are rewritten.

readonly UPGRADE_TMP_DIR=$KUBE_DIR/tmp

cmd_upgrade() {
  local sub=${1:-}
  shift || true
  case $sub in
    plan) upgrade_plan "$@" ;;
    apply) upgrade_apply "$@" ;;
    node) upgrade_node "$@" ;;
    *) kubeadm_fail "the kube-stub kubeadm supports \"upgrade plan|apply|node\" only, not \"upgrade $sub\"" ;;
  esac
}

# Flags shared by plan/apply/node; sets UPGRADE_VERSION (the positional argument), UPGRADE_YES, UPGRADE_FORCE.
parse_upgrade_flags() {
  local command=$1 name value
  shift
  UPGRADE_VERSION="" UPGRADE_YES=0 UPGRADE_FORCE=0
  while (($#)); do
    name=${1%%=*}
    case $name in
      -y | --yes) UPGRADE_YES=1 SHIFT=1 ;;
      -f | --force) UPGRADE_FORCE=1 SHIFT=1 ;;
      --ignore-preflight-errors) take IGNORED_PREFLIGHT "$@" ;;
      --kubeconfig | --v | -v | --certificate-renewal | --etcd-upgrade | --patches) take value "$@" ;;
      --allow-experimental-upgrades | --allow-release-candidate-upgrades) SHIFT=1 ;;
      -*) kubeadm_fail "unknown flag: $name" ;;
      *)
        [[ $command != node && -z $UPGRADE_VERSION ]] || kubeadm_fail "unknown command \"$1\" for \"kubeadm upgrade $command\""
        UPGRADE_VERSION=$1 SHIFT=1
        ;;
    esac
    shift "$SHIFT"
  done
}

# parse_target VERSION: vX.Y.Z, or kubeadm's failures (NormalizeKubernetesVersion in util/config/common.go refuses
# versions below MinimumControlPlaneVersion, kubeadm's minor - 1); the stub also needs an image list for it.
parse_target() {
  local version=$1 own
  [[ $version =~ ^v?[0-9]+\.[0-9]+\.[0-9]+$ ]] ||
    kubeadm_fail "couldn't parse Kubernetes version \"$version\": expected v<major>.<minor>.<patch> (there is no internet here to resolve version labels)"
  version=v${version#v}
  own=$(minor_of "$KUBE_VERSION")
  (($(minor_of "$version") >= own - 1)) ||
    kubeadm_fail "this version of kubeadm only supports deploying clusters with the control plane version >= v1.$((own - 1)).0-0. Current version: $version"
  image_tags "$version" >/dev/null || kubeadm_fail "the kube-stub kubeadm $KUBE_VERSION has no image list for Kubernetes $version"
  printf '%s\n' "$version"
}

# Reads the kubeadm-config stand-in from ENDPOINT: sets CLUSTER_VERSION, CLUSTER_CGROUP_DRIVER, CLUSTER_DNS and
# the CFG_* image settings control_plane_images uses.
load_cluster_config() {
  local endpoint=$1 answer
  answer=$(api_call "$endpoint" CLUSTER-CONFIGURATION) ||
    kubeadm_fail "unable to fetch the kubeadm-config ConfigMap: failed to get config map: $answer"
  cfg_value() { sed -n "s/^$1=//p" <<<"$answer" | head -n 1; }
  CLUSTER_VERSION=$(cfg_value kubernetes_version)
  CLUSTER_CGROUP_DRIVER=$(cfg_value cgroup_driver)
  CLUSTER_DNS=$(cfg_value cluster_dns)
  CFG_IMAGE_REPO=$(cfg_value image_repository)
  CFG_IMAGE_REPO=${CFG_IMAGE_REPO:-$DEFAULT_IMAGE_REPOSITORY}
  CFG_DNS_REPO=$(cfg_value dns_repository) CFG_DNS_TAG=$(cfg_value dns_tag)
  CFG_ETCD_REPO=$(cfg_value etcd_repository) CFG_ETCD_TAG=$(cfg_value etcd_tag)
  CFG_ETCD_EXTERNAL=$(cfg_value etcd_external)
}

# This host's node name, runtime and pull policy, as init/join recorded them.
load_node_env() {
  [[ -f $NODE_ENV ]] || kubeadm_fail "this host is not a kubeadm node: run kubeadm init or kubeadm join first"
  NODE_NAME=$(kv_get "$NODE_ENV" node_name)
  NODE_PULL_POLICY=$(kv_get "$NODE_ENV" image_pull_policy)
  resolve_cri_socket "$(kv_get "$NODE_ENV" cri_socket)"
}

is_control_plane_node() { [[ -f $ROOT$KUBE_DIR/manifests/kube-apiserver.yaml ]]; }

# CheckClusterHealth (phases/upgrade/health.go), the parts the stub has: every control-plane Node Ready, and this
# node's static Pod manifests on disk. Errors are preflight errors (ignorable by name).
cluster_health() {
  local rows notready component
  echo "[upgrade] Running cluster health checks"
  rows=$(api_call "$1" NODES) || kubeadm_fail "[upgrade/health] FATAL: couldn't list the Nodes: $rows"
  notready=$(awk -F'\t' '$3 == "control-plane" && $2 != "Ready" { printf "%s%s", sep, $1; sep = " " }' <<<"$rows")
  [[ -z $notready ]] || preflight_error ControlPlaneNodesReady "there are NotReady control-planes in the cluster: [$notready]"
  for component in kube-apiserver kube-controller-manager kube-scheduler; do
    [[ -f $ROOT$KUBE_DIR/manifests/$component.yaml ]] ||
      preflight_error StaticPodManifest "the manifest for component $component does not exist: $KUBE_DIR/manifests/$component.yaml"
  done
  preflight_finish
}

# EnforceVersionPolicies (cmd/kubeadm/app/phases/upgrade/policy.go): MANDATORY and SKIPPABLE errors for moving a
# cluster at CLUSTER to TARGET with this kubeadm, the kubelets at KUBELET... The messages are kubeadm's.
enforce_version_policies() {
  local target=$1 cluster=$2 k_minor t_minor c_minor kubelet
  local -a too_old=()
  shift 2
  MANDATORY=() SKIPPABLE=()
  echo "[upgrade/versions] Cluster version: $cluster"
  echo "[upgrade/versions] kubeadm version: $KUBE_VERSION"
  k_minor=$(minor_of "$KUBE_VERSION") t_minor=$(minor_of "$target") c_minor=$(minor_of "$cluster")
  # MaximumAllowedMinorVersionUpgradeSkew = 1, MaximumAllowedMinorVersionDowngradeSkew = 1
  ((t_minor <= c_minor + 1)) ||
    MANDATORY+=("Specified version to upgrade to \"$target\" is too high; kubeadm can upgrade only 1 minor version at a time")
  ((t_minor >= c_minor - 1)) ||
    MANDATORY+=("Specified version to downgrade to \"$target\" is too low; kubeadm can downgrade only 1 minor version at a time")
  # kubeadm older than the target: a newer minor is not supported, a newer patch needs --force
  if version_newer "$target" "$KUBE_VERSION"; then
    if ((t_minor > k_minor)); then
      MANDATORY+=("Specified version to upgrade to \"$target\" is at least one minor release higher than the kubeadm minor release ($t_minor > $k_minor). Such an upgrade is not supported")
    else
      SKIPPABLE+=("Specified version to upgrade to \"$target\" is higher than the kubeadm version \"$KUBE_VERSION\". Upgrade kubeadm first using the tool you used to install kubeadm")
    fi
  fi
  ((k_minor <= t_minor)) ||
    SKIPPABLE+=("Kubeadm version $KUBE_VERSION can only be used to upgrade to Kubernetes version 1.$k_minor")
  # detectTooOldKubelets, with today's MaximumAllowedMinorVersionKubeletSkew of 3 (kubelets may be three minors
  # older than kube-apiserver since 1.28)
  for kubelet in "$@"; do
    [[ $kubelet =~ ^v[0-9] ]] || continue
    ((t_minor > $(minor_of "$kubelet") + 3)) && [[ " ${too_old[*]} " != *" $kubelet "* ]] && too_old+=("$kubelet")
  done
  ((${#too_old[@]} == 0)) || SKIPPABLE+=("There are kubelets in this cluster that are too old that have these versions [${too_old[*]}]")
  return 0
}

# Fails like apply's preflight on MANDATORY errors, and on SKIPPABLE ones without --force
# (cmd/kubeadm/app/cmd/phases/upgrade/apply/preflight.go enforceVersionPolicies, formatErrorMsg).
version_policy_verdict() {
  local list=""
  if ((${#MANDATORY[@]})); then
    list=$(printf '\t- %s\n' "${MANDATORY[@]}")
    kubeadm_fail "error execution phase preflight: the version argument is invalid due to these fatal errors:

$list

Please fix the misalignments highlighted above and try upgrading again"
  fi
  ((${#SKIPPABLE[@]})) || return 0
  list=$(printf '\t- %s\n' "${SKIPPABLE[@]}")
  ((UPGRADE_FORCE)) ||
    kubeadm_fail "error execution phase preflight: the version argument is invalid due to these errors:

$list

Can be bypassed if you pass the --force flag"
  printf '[upgrade/preflight] Found %d potential version compatibility errors but skipping since the --force flag is set: \n\n%s\n' \
    "${#SKIPPABLE[@]}" "$list"
}

# The images of CFG_VERSION, pulled as init pulls them (through containerd's hosts dir, or docker), honouring the
# node's imagePullPolicy; a failed pull is an [ERROR ImagePull].
upgrade_pull_images() {
  local -a images
  echo "[upgrade/preflight] Pulling images required for setting up a Kubernetes cluster"
  echo "[upgrade/preflight] This might take a minute or two, depending on the speed of your internet connection"
  echo "[upgrade/preflight] You can also perform this action beforehand using 'kubeadm config images pull'"
  cri_preflight "" ""
  preflight_finish
  mapfile -t images < <(control_plane_images)
  pull_images "${NODE_PULL_POLICY:-IfNotPresent}" "${images[@]}" || true
  preflight_finish
}

# This node's static Pods at CFG_VERSION, the old manifests backed up as kubeadm's staticpods.go does.
upgrade_static_pods() {
  local backup component
  local -a images
  backup=$UPGRADE_TMP_DIR/kubeadm-backup-manifests-$(date -u +%Y-%m-%d-%H-%M-%S)
  mkdir -p "$ROOT$backup"
  echo "[upgrade/control-plane] Upgrading your static Pod-hosted control plane to version \"$CFG_VERSION\" (timeout: 5m0s)..."
  for component in etcd kube-apiserver kube-controller-manager kube-scheduler; do
    [[ -f $ROOT$KUBE_DIR/manifests/$component.yaml ]] || continue
    cp -p "$ROOT$KUBE_DIR/manifests/$component.yaml" "$ROOT$backup/$component.yaml"
    echo "[upgrade/staticpods] Moving new manifest to \"$KUBE_DIR/manifests/$component.yaml\" and backing up old manifest to \"$backup/$component.yaml\""
  done
  mapfile -t images < <(control_plane_images)
  write_static_pods "${images[@]}" >/dev/null
  restart_api_server
  echo "[upgrade/control-plane] The control plane instance for this node was successfully upgraded!"
}

# The kubelet restarts the kube-apiserver static pod when its manifest changes, and kubeadm waits until it answers
# again: this host's API server is away for a while (a real one 10-30 s). The stub stops this host's API socket for
# KUBE_STUB_APISERVER_RESTART_SECONDS (default 8, longer than haproxy's 3 checks 2 s apart take to mark a server
# down), then starts it again. Only on a control plane that joined: the first one holds the stub cluster's only
# records and the others relay to it, where a real cluster's API servers read etcd's quorum.
restart_api_server() {
  local seconds=${KUBE_STUB_APISERVER_RESTART_SECONDS:-8}
  # shellcheck disable=SC2153 # CLUSTER_DIR is lib.sh's, as everywhere in the stub
  [[ ! -d $CLUSTER_DIR ]] || return 0
  [[ $STUB_LIB -ef $ROOT/usr/lib/kube-stub ]] && systemctl is-active --quiet "$API_SOCKET_UNIT" 2>/dev/null || return 0
  stub_note "upgrade: kube-apiserver restarting, this host's API server down for ${seconds}s"
  systemctl stop "$API_SOCKET_UNIT"
  sleep "$seconds"
  start_api_endpoint # the socket listens once systemctl returns: the next connection is served
  stub_note "upgrade: kube-apiserver back"
}

# The kubelet config rewritten from the cluster's (kubeletconfig.go: backed up to /etc/kubernetes/tmp first).
upgrade_kubelet_config() {
  local backup
  backup=$UPGRADE_TMP_DIR/kubeadm-kubelet-config-$(date -u +%Y-%m-%d-%H-%M-%S)
  if [[ -f $ROOT$KUBELET_DIR/config.yaml ]]; then
    mkdir -p "$ROOT$backup"
    echo "[upgrade] Backing up kubelet config file to $backup/config.yaml"
    mv "$ROOT$KUBELET_DIR/config.yaml" "$ROOT$backup/config.yaml"
  fi
  write_kubelet_config "${CLUSTER_CGROUP_DRIVER:-systemd}" "$CLUSTER_DNS"
  stub_note "upgrade: wrote $KUBELET_DIR/config.yaml for $CFG_VERSION (old one in $backup)"
  echo "[upgrade/kubelet-config] The kubelet configuration for this node was successfully upgraded!"
}

# kubeadm upgrade plan [version]
upgrade_plan() {
  local endpoint rows target description component name status role _r version cp_version old_tags new_tags
  local old_dns old_etcd new_dns new_etcd
  parse_upgrade_flags plan "$@"
  endpoint=$(admin_endpoint)
  echo "[preflight] Running pre-flight checks."
  echo "[upgrade/config] Reading configuration from the cluster..."
  echo "[upgrade/config] FYI: You can look at this config file with 'kubectl -n kube-system get cm kubeadm-config -o yaml'"
  load_cluster_config "$endpoint"
  cluster_health "$endpoint"
  echo "[upgrade] Fetching available versions to upgrade to"
  if [[ -z $UPGRADE_VERSION ]]; then
    echo "W0000 version.go:104] could not fetch a Kubernetes version from the internet: unable to get URL \"https://dl.k8s.io/release/stable.txt\"" >&2
    echo "W0000 version.go:105] falling back to the local client version: $KUBE_VERSION" >&2
    UPGRADE_VERSION=$KUBE_VERSION
  fi
  target=$(parse_target "$UPGRADE_VERSION")
  echo "[upgrade/versions] Cluster version: $CLUSTER_VERSION"
  echo "[upgrade/versions] kubeadm version: $KUBE_VERSION"
  echo "[upgrade/versions] Target version: $target"
  # compute.go GetAvailableUpgrades with an offline version getter: every version label resolves to the target,
  # so the upgrade is described as "the latest version in the v<cluster minor> series" even for the next minor,
  # and a target not newer than the cluster offers nothing.
  description="version in the v1.$(minor_of "$CLUSTER_VERSION") series"
  echo "[upgrade/versions] Latest $description: $target"
  echo
  if ! version_newer "$target" "$CLUSTER_VERSION"; then
    echo "Awesome, you're up-to-date! Enjoy!"
    return
  fi
  rows=$(api_call "$endpoint" NODES) || kubeadm_fail "[upgrade/versions] FATAL: couldn't list the Nodes: $rows"
  old_tags=$(image_tags "$CLUSTER_VERSION" || echo "? ? ?")
  new_tags=$(image_tags "$target")
  read -r old_dns old_etcd _r <<<"$old_tags"
  read -r new_dns new_etcd _r <<<"$new_tags"
  echo "Components that must be upgraded manually after you have upgraded the control plane with 'kubeadm upgrade apply':"
  {
    printf 'COMPONENT\tNODE\tCURRENT\tTARGET\n'
    while IFS=$'\t' read -r name status role _r version _r _r _r _r _r cp_version; do
      printf 'kubelet\t%s\t%s\t%s\n' "$name" "$version" "$target"
    done <<<"$rows"
  } | plan_table
  echo
  echo "Upgrade to the latest $description:"
  echo
  {
    printf 'COMPONENT\tNODE\tCURRENT\tTARGET\n'
    for component in kube-apiserver kube-controller-manager kube-scheduler; do
      while IFS=$'\t' read -r name status role _r version _r _r _r _r _r cp_version; do
        if [[ $role == control-plane ]]; then printf '%s\t%s\t%s\t%s\n' "$component" "$name" "$cp_version" "$target"; fi
      done <<<"$rows"
    done
    printf 'kube-proxy\t\t%s\t%s\n' "${CLUSTER_VERSION#v}" "$target"
    printf 'CoreDNS\t\t%s\t%s\n' "${CFG_DNS_TAG:-$old_dns}" "${CFG_DNS_TAG:-$new_dns}"
    if [[ -z $CFG_ETCD_EXTERNAL ]]; then
      while IFS=$'\t' read -r name status role _r version _r _r _r _r _r cp_version; do
        if [[ $role == control-plane ]]; then printf 'etcd\t%s\t%s\t%s\n' "$name" "${CFG_ETCD_TAG:-$old_etcd}" "${CFG_ETCD_TAG:-$new_etcd}"; fi
      done <<<"$rows"
    fi
  } | plan_table
  echo
  echo "You can now apply the upgrade by executing the following command:"
  echo
  printf '\tkubeadm upgrade apply %s\n\n' "$target"
  if version_newer "$target" "$KUBE_VERSION"; then
    printf 'Note: Before you can perform this upgrade, you have to update kubeadm to %s.\n\n' "$target"
  fi
  echo "_____________________________________________________________________"
  echo
  cat <<'EOF'

The table below shows the current state of component configs as understood by this version of kubeadm.
Configs that have a "yes" mark in the "MANUAL UPGRADE REQUIRED" column require manual config upgrade or
resetting to kubeadm defaults before a successful upgrade can be performed. The version to manually
upgrade to is denoted in the "PREFERRED VERSION" column.

API GROUP                 CURRENT VERSION   PREFERRED VERSION   MANUAL UPGRADE REQUIRED
kubeproxy.config.k8s.io   v1alpha1          v1alpha1            no
kubelet.config.k8s.io     v1beta1           v1beta1             no
_____________________________________________________________________

EOF
}

# Go's tabwriter as kubeadm configures it (minwidth 10, padding 3).
plan_table() {
  awk -F'\t' '
    { rows[NR] = $0; for (i = 1; i <= NF; i++) { w = length($i) + 3; if (w < 10) w = 10; if (w > width[i]) width[i] = w } }
    END {
      for (r = 1; r <= NR; r++) {
        n = split(rows[r], cell, "\t"); line = ""
        for (i = 1; i <= n; i++) line = line (i < n ? sprintf("%-" width[i] "s", cell[i]) : cell[i])
        sub(/ +$/, "", line); print line
      }
    }'
}

# kubeadm upgrade apply <version> [-y] [-f]
upgrade_apply() {
  local endpoint answer rows target
  local -a kubelets images
  parse_upgrade_flags apply "$@"
  [[ -n $UPGRADE_VERSION ]] ||
    kubeadm_fail "error execution phase preflight: missing version argument: the kube-stub kubeadm does not look versions up on the internet; pass one, e.g. kubeadm upgrade apply $KUBE_VERSION"
  endpoint=$(admin_endpoint)
  load_node_env
  echo "[upgrade] Reading configuration from the cluster..."
  echo "[upgrade] FYI: You can look at this config file with 'kubectl -n kube-system get cm kubeadm-config -o yaml'"
  load_cluster_config "$endpoint"
  echo "[upgrade/preflight] Running preflight checks"
  cluster_health "$endpoint"
  target=$(parse_target "$UPGRADE_VERSION")
  echo "[upgrade/preflight] You have chosen to upgrade the cluster version to \"$target\""
  rows=$(api_call "$endpoint" NODES) || kubeadm_fail "error execution phase preflight: couldn't list the Nodes: $rows"
  mapfile -t kubelets < <(cut -f5 <<<"$rows" | sort -u)
  enforce_version_policies "$target" "$CLUSTER_VERSION" "${kubelets[@]}"
  version_policy_verdict
  if ((!UPGRADE_YES && !UPGRADE_FORCE)); then
    printf '[upgrade] Are you sure you want to proceed? [y/N]: '
    read -r answer || true
    [[ ${answer,,} == y || ${answer,,} == yes ]] ||
      kubeadm_fail "error execution phase preflight: won't proceed; the user didn't answer (Y|y) in order to continue"
  fi
  CFG_VERSION=$target
  upgrade_pull_images
  upgrade_static_pods
  mapfile -t images < <(control_plane_images)
  answer=$(api_call "$endpoint" UPGRADE "$target" "$NODE_NAME" "${images[@]}") ||
    kubeadm_fail "error execution phase upload-config: failed to update the kubeadm-config ConfigMap: $answer"
  echo "[upgrade/upload-config] Uploading the kubeadm ClusterConfiguration to a ConfigMap called \"kubeadm-config\" in the \"kube-system\" Namespace"
  upgrade_kubelet_config
  echo "[upgrade/addon] Applied essential addon: CoreDNS"
  echo "[upgrade/addon] Applied essential addon: kube-proxy"
  echo
  echo "[upgrade] SUCCESS! A control plane node of your cluster was upgraded to \"$target\"."
  echo
  echo "[upgrade] Now please proceed with upgrading the rest of the nodes by following the right order."
}

# kubeadm upgrade node
upgrade_node() {
  local endpoint conf answer cluster_minor own_minor
  parse_upgrade_flags node "$@"
  load_node_env
  # kubeadm reads the cluster through admin.conf where there is one, else the kubelet's kubeconfig
  conf=$ROOT$KUBE_DIR/admin.conf
  [[ -f $conf ]] || conf=$ROOT$KUBE_DIR/kubelet.conf
  [[ -f $conf ]] || kubeadm_fail "couldn't create a Kubernetes client from file \"$KUBE_DIR/kubelet.conf\": open $KUBE_DIR/kubelet.conf: no such file or directory"
  endpoint=$(kubeconfig_endpoint "$conf")
  echo "[upgrade] Reading configuration from the \"kubeadm-config\" ConfigMap in namespace \"kube-system\"..."
  echo "[upgrade] Use 'kubeadm init phase upload-config --config your-config-file' to re-upload it."
  load_cluster_config "$endpoint"
  CFG_VERSION=$(parse_target "$CLUSTER_VERSION")
  echo "[upgrade/preflight] Running pre-flight checks"
  # preflight's KubernetesVersionCheck (app/preflight/checks.go): a cluster version from a newer minor than this
  # kubeadm is not supported ("firstUnsupportedVersion" = kubeadm's major.minor+1.0-0). The stub makes it an error
  # of `upgrade node`, ignorable by name: the node would be configured by a kubeadm that does not know that version.
  cluster_minor=$(minor_of "$CFG_VERSION") own_minor=$(minor_of "$KUBE_VERSION")
  if ((cluster_minor > own_minor)); then
    preflight_error KubernetesVersion "Kubernetes version is greater than kubeadm version. Please consider to upgrade kubeadm. Kubernetes version: ${CFG_VERSION#v}. Kubeadm version: 1.$own_minor.x"
  fi
  preflight_finish
  if is_control_plane_node; then
    upgrade_pull_images
    upgrade_static_pods
    answer=$(api_call "$endpoint" UPGRADE-NODE "$NODE_NAME" "$CFG_VERSION") ||
      kubeadm_fail "error execution phase control-plane: $answer"
  else
    echo "[upgrade/preflight] Skipping prepull. Not a control plane node."
    echo "[upgrade/control-plane] Skipping phase. Not a control plane node."
  fi
  upgrade_kubelet_config
  echo "[upgrade] The configuration for this node was successfully updated!"
  echo "[upgrade] Now you should go ahead and upgrade the kubelet package using your package manager."
}
