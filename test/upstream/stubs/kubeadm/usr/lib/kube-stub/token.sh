# shellcheck shell=bash
# Commands that talk to a running cluster through /etc/kubernetes/admin.conf: `kubeadm token create|list|delete`,
# `kubeadm init phase upload-certs`; and `kubeadm certs certificate-key`.

cmd_token() {
  local sub=${1:-}
  shift || true
  case $sub in
    create) token_create "$@" ;;
    list) token_list "$@" ;;
    delete) token_delete "$@" ;;
    generate) random_token ;;
    *) kubeadm_fail "the kube-stub kubeadm supports \"token create|list|delete|generate\" only, not \"token $sub\"" ;;
  esac
}

token_create() {
  local token="" ttl=24h print=0 certificate_key="" description="" value name endpoint answer hash
  while (($#)); do
    name=${1%%=*}
    case $name in
      --print-join-command) print=1 SHIFT=1 ;;
      --ttl) take ttl "$@" ;;
      --certificate-key) take certificate_key "$@" ;;
      --description) take description "$@" ;;
      --usages | --groups | --kubeconfig | --v | -v) take value "$@" ;;
      -*) kubeadm_fail "unknown flag: $name" ;;
      *) token=$1 SHIFT=1 ;;
    esac
    shift "$SHIFT"
  done
  token=${token:-$(random_token)}
  [[ $token =~ $TOKEN_FORMAT ]] || kubeadm_fail "the bootstrap token \"$token\" was not of the form \"[a-z0-9]{6}.[a-z0-9]{16}\""
  duration_seconds "$ttl" >/dev/null || kubeadm_fail "invalid argument \"$ttl\" for \"--ttl\" flag: time: invalid duration \"$ttl\""
  endpoint=$(admin_endpoint)
  answer=$(api_call "$endpoint" TOKEN-CREATE "$token" "$ttl" "$description") ||
    kubeadm_fail "failed to create or update bootstrap token with name bootstrap-token-${token%%.*}: $answer"
  if ((!print)); then
    echo "$token"
    return
  fi
  hash=$(ca_cert_hash "$ROOT$KUBE_DIR/pki/ca.crt") ||
    kubeadm_fail "failed to load the CA certificate $KUBE_DIR/pki/ca.crt"
  printf 'kubeadm join %s --token %s --discovery-token-ca-cert-hash %s %s\n' "$endpoint" "$token" "$hash" \
    "${certificate_key:+--control-plane --certificate-key $certificate_key}"
}

# The cluster's unexpired bootstrap tokens, in kubeadm's table.
token_list() {
  local answer token expires description now ttl expiry
  answer=$(api_call "$(admin_endpoint)" TOKENS) || kubeadm_fail "failed to list bootstrap tokens: $answer"
  now=$(date +%s)
  printf '%-24s  %-9s  %-20s  %-22s  %-20s  %s\n' TOKEN TTL EXPIRES USAGES DESCRIPTION "EXTRA GROUPS"
  while IFS=$'\t' read -r token expires description; do
    [[ -n $token ]] || continue
    if ((expires == 0)); then
      ttl='<forever>' expiry='<never>'
    else
      ttl=$(((expires - now + 3599) / 3600))h expiry=$(date -u -d "@$expires" +%Y-%m-%dT%H:%M:%SZ)
    fi
    printf '%-24s  %-9s  %-20s  %-22s  %-20s  %s\n' "$token" "$ttl" "$expiry" authentication,signing \
      "${description:-<none>}" system:bootstrappers:kubeadm:default-node-token
  done <<<"$answer"
}

# kubeadm token delete TOKEN-ID|TOKEN...: deletes each token's Secret, named by the token's public ID, as kubeadm
# does (the full token is accepted too, and only its ID is used).
token_delete() {
  local arg id answer
  local -a ids=()
  while (($#)); do
    case ${1%%=*} in
      --kubeconfig | --v | -v) take answer "$@" ;;
      --dry-run) kubeadm_fail "the kube-stub kubeadm does not support --dry-run" ;;
      -*) kubeadm_fail "unknown flag: ${1%%=*}" ;;
      *) ids+=("$1") SHIFT=1 ;;
    esac
    shift "$SHIFT"
  done
  ((${#ids[@]})) || kubeadm_fail "missing subcommand; 'token delete' is missing token of form \"^([a-z0-9]{6})\$\""
  for arg in "${ids[@]}"; do
    if [[ $arg =~ ^[a-z0-9]{6}$ ]]; then
      id=$arg
    elif [[ $arg =~ $TOKEN_FORMAT ]]; then
      id=${arg%%.*}
    else
      kubeadm_fail "given token didn't match pattern \"^([a-z0-9]{6})\$\" or \"^([a-z0-9]{6})\\.([a-z0-9]{16})\$\""
    fi
    answer=$(api_call "$(admin_endpoint)" TOKEN-DELETE "$id") ||
      kubeadm_fail "failed to delete bootstrap token \"$id\": $answer"
    echo "bootstrap token \"$id\" deleted"
  done
}

# `kubeadm init phase ...`: only upload-certs, which re-uploads the control-plane certificates under a key: the
# InitConfiguration's certificateKey with --config (kubeadm refuses --certificate-key beside it), else
# --certificate-key, else a new one.
cmd_init_phase() {
  local phase=${1:-} upload=0 key="" config="" value name
  local -a mixed=()
  shift || true
  [[ $phase == upload-certs ]] || kubeadm_fail "the kube-stub kubeadm supports \"init phase upload-certs\" only, not \"$phase\""
  while (($#)); do
    name=${1%%=*}
    case $name in
      --upload-certs) upload=1 SHIFT=1 ;;
      --certificate-key) take key "$@"; mixed+=(certificate-key) ;;
      --config) take config "$@" ;;
      --kubeconfig | --v | -v) take value "$@" ;;
      *) kubeadm_fail "unknown flag: $name" ;;
    esac
    shift "$SHIFT"
  done
  refuse_mixed_flags "$config" "${mixed[@]}"
  if [[ -n $config ]]; then
    load_init_config "$config"
    key=$CFG_CERT_KEY
  fi
  if ((!upload)); then
    echo "[upload-certs] Skipping phase. Please see --upload-certs"
    return
  fi
  key=${key:-$(random_hex64)}
  [[ $key =~ $CERTIFICATE_KEY_FORMAT ]] ||
    kubeadm_fail "--certificate-key: Invalid value: \"$key\": must be 64 lowercase hexadecimal characters (32 bytes)"
  value=$(api_call "$(admin_endpoint)" UPLOAD-CERTS "$(sha256_of "$key")") ||
    kubeadm_fail "error execution phase upload-certs: error uploading certs: $value"
  print_uploaded_certs "$key"
}

cmd_certs() {
  [[ ${1:-} == certificate-key ]] || kubeadm_fail "the kube-stub kubeadm supports \"certs certificate-key\" only"
  random_hex64
}
