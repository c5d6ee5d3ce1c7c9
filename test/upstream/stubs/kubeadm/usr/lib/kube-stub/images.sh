# shellcheck shell=bash
# Which Kubernetes versions this kubeadm deploys and the control-plane images each one needs.

# Image tags per Kubernetes patch range, as the real kubeadm of each version prints them in
# `kubeadm config images list` (kube-* images are always tagged with the Kubernetes version itself).
# minor  first-patch  last-patch  coredns  etcd  pause
readonly IMAGE_TAG_TABLE="
1.28 0 5 v1.10.1 3.5.9-0 3.9
1.28 6 7 v1.10.1 3.5.10-0 3.9
1.28 8 13 v1.10.1 3.5.12-0 3.9
1.28 14 15 v1.10.1 3.5.15-0 3.9
1.29 0 2 v1.11.1 3.5.10-0 3.9
1.29 3 8 v1.11.1 3.5.12-0 3.9
1.29 9 10 v1.11.1 3.5.15-0 3.9
1.29 11 15 v1.11.1 3.5.16-0 3.9
1.30 0 4 v1.11.1 3.5.12-0 3.9
1.30 5 14 v1.11.3 3.5.15-0 3.9
1.31 0 0 v1.11.1 3.5.15-0 3.10
1.31 1 13 v1.11.3 3.5.15-0 3.10
1.31 14 14 v1.11.3 3.5.24-0 3.10
1.32 0 9 v1.11.3 3.5.16-0 3.10
1.32 10 13 v1.11.3 3.5.24-0 3.10
1.33 0 5 v1.12.0 3.5.21-0 3.10
1.33 6 13 v1.12.0 3.5.24-0 3.10
1.34 0 1 v1.12.1 3.6.4-0 3.10.1
1.34 2 10 v1.12.1 3.6.5-0 3.10.1"

readonly DEFAULT_IMAGE_REPOSITORY=registry.k8s.io

minor_of() { local v=${1#v}; v=${v#*.}; printf '%s\n' "${v%%.*}"; }

# Prints VERSION as kubeadm writes it (v1.32.3), or fails like kubeadm for versions it cannot deploy.
normalize_kubernetes_version() {
  local version=$1 own target
  [[ $version =~ ^v?[0-9]+\.[0-9]+\.[0-9]+$ ]] ||
    kubeadm_fail "couldn't parse Kubernetes version \"$version\": expected v<major>.<minor>.<patch> (there is no internet here to resolve version labels)"
  version=v${version#v}
  own=$(minor_of "$KUBE_VERSION")
  target=$(minor_of "$version")
  if [[ ${version#v} != 1.* ]] || ((target < own - 1)); then
    kubeadm_fail "this version of kubeadm only supports deploying clusters with the control plane version >= 1.$((own - 1)).0. Current version: $version"
  fi
  ((target <= own + 1)) ||
    kubeadm_fail "Kubernetes version is greater than kubeadm version. Please consider to upgrade kubeadm. Kubernetes version: $version. Kubeadm version: 1.$own.x"
  image_tags "$version" >/dev/null ||
    kubeadm_fail "the kube-stub kubeadm $KUBE_VERSION has no image list for Kubernetes $version"
  printf '%s\n' "$version"
}

# image_tags VERSION: prints "COREDNS ETCD PAUSE" tags, or fails when the version is not in the table.
image_tags() {
  local version=${1#v} minor first last coredns etcd pause patch
  patch=${version##*.}
  while read -r minor first last coredns etcd pause; do
    if [[ $minor == "${version%.*}" ]] && ((patch >= first && patch <= last)); then
      printf '%s %s %s\n' "$coredns" "$etcd" "$pause"
      return 0
    fi
  done <<<"$IMAGE_TAG_TABLE"
  return 1
}

# The images of a cluster, in the order kubeadm lists them, from the CFG_* settings of a loaded
# ClusterConfiguration (or flags): CFG_VERSION CFG_IMAGE_REPO CFG_DNS_REPO CFG_DNS_TAG CFG_ETCD_REPO
# CFG_ETCD_TAG CFG_ETCD_EXTERNAL.
control_plane_images() {
  local repo=${CFG_IMAGE_REPO:-$DEFAULT_IMAGE_REPOSITORY} coredns etcd pause component dns_repo
  read -r coredns etcd pause < <(image_tags "$CFG_VERSION")
  for component in kube-apiserver kube-controller-manager kube-scheduler kube-proxy; do
    printf '%s/%s:%s\n' "$repo" "$component" "$CFG_VERSION"
  done
  # kubeadm adds the /coredns path segment only when CoreDNS comes from the default registry
  dns_repo=${CFG_DNS_REPO:-$repo}
  [[ $dns_repo == "$DEFAULT_IMAGE_REPOSITORY" ]] && dns_repo+=/coredns
  printf '%s/coredns:%s\n' "$dns_repo" "${CFG_DNS_TAG:-$coredns}"
  printf '%s/pause:%s\n' "$repo" "$pause"
  [[ -n ${CFG_ETCD_EXTERNAL:-} ]] || printf '%s/etcd:%s\n' "${CFG_ETCD_REPO:-$repo}" "${CFG_ETCD_TAG:-$etcd}"
}

# The pause (sandbox) image kubeadm expects the container runtime to use.
pause_image() {
  control_plane_images | grep '/pause:'
}

# The images every node's kubelet pulls for its kube-proxy pod (and the pod's sandbox).
node_images() {
  control_plane_images | grep -E '/(kube-proxy|pause):'
}
