# shellcheck shell=bash
# kubeadm reset: stop what init/join started and delete what they wrote. Like the real one it leaves
# /etc/cni/net.d, iptables and kubeconfig copies alone (and says so).

readonly RESET_DIRECTORIES=("$KUBE_DIR/manifests" "$KUBELET_DIR" "$KUBE_DIR/pki" "$ETCD_DATA_DIR")
readonly RESET_FILES=("$KUBE_DIR/admin.conf" "$KUBE_DIR/super-admin.conf" "$KUBE_DIR/kubelet.conf"
  "$KUBE_DIR/bootstrap-kubelet.conf" "$KUBE_DIR/controller-manager.conf" "$KUBE_DIR/scheduler.conf")

# Flags kubeadm reset takes that change nothing here are accepted and ignored.
# shellcheck disable=SC2034  # `ignored` only soaks up their values
cmd_reset() {
  local force=0 ignored answer path name
  while (($#)); do
    name=${1%%=*}
    case $name in
      -f | --force) force=1 SHIFT=1 ;;
      --cri-socket | --ignore-preflight-errors | --kubeconfig | --cert-dir | --skip-phases | --v | -v) take ignored "$@" ;;
      --cleanup-tmp-dir) SHIFT=1 ;;
      *) kubeadm_fail "unknown flag: $name" ;;
    esac
    shift "$SHIFT"
  done
  if ((!force)); then
    printf '[reset] Are you sure you want to proceed? [y/N]: '
    read -r answer || true
    [[ ${answer,,} == y || ${answer,,} == yes ]] || kubeadm_fail "error execution phase preflight: won't proceed; the user didn't answer (Y|y) in order to continue"
  fi
  echo "[preflight] Running pre-flight checks"
  if [[ -f $NODE_ENV && $(kv_get "$NODE_ENV" role) == control-plane ]]; then
    echo "[reset] Stopping the stub API server endpoint"
    systemctl disable --now "$API_SOCKET_UNIT" >/dev/null 2>&1 || true
  fi
  echo "[reset] Stopping the kubelet service"
  systemctl stop kubelet.service >/dev/null 2>&1 || true
  echo "[reset] Unmounting mounted directories in \"$KUBELET_DIR\""
  echo "[reset] Deleting contents of directories: [${RESET_DIRECTORIES[*]}]"
  for path in "${RESET_DIRECTORIES[@]}"; do
    if [[ -d $ROOT$path ]]; then find "$ROOT$path" -mindepth 1 -delete; fi
  done
  echo "[reset] Deleting files: [${RESET_FILES[*]}]"
  for path in "${RESET_FILES[@]}"; do rm -f "$ROOT$path"; done
  rm -rf "$STATE_DIR"
  cat <<EOF

The reset process does not clean CNI configuration. To do so, you must remove /etc/cni/net.d

The reset process does not reset or clean up iptables rules or IPVS tables.
If you wish to reset iptables, you must do so manually by using the "iptables" command.

If your cluster was setup to utilize IPVS, run ipvsadm --clear (or similar)
to reset your system's IPVS tables.

The reset process does not clean your kubeconfig files and you must remove them manually.
Please, check the contents of the \$HOME/.kube/config file.
EOF
}
