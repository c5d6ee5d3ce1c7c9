# shellcheck shell=bash
# Talking to the stub API endpoint, the CA public-key pin, and kubeconfig files.
#
# Protocol (served by apiserver.sh, one request per TCP connection): the client sends one line of TAB-separated
# fields, VERB first, "-" for an empty field; the server answers "OK" and a body, or "ERROR <message>", then
# closes the connection. kubectl carries its own copy of api_call (it is packaged separately).

readonly API_TIMEOUT=20
readonly STUB_PKI=$STUB_LIB/pki   # fixed test CA and admin client pair: every stub cluster shares them

# api_exchange HOST:PORT LINE: sends one request line and prints the raw answer (bash's complaint on failure).
# The line goes to the helper on stdin, not as an argument: it may hold a bootstrap token, and a process's
# arguments are readable by every user on the host (/proc/PID/cmdline), as the real kubeadm never exposes them.
api_exchange() {
  local host=${1%:*} port=${1##*:}
  host=${host#[} host=${host%]}
  # shellcheck disable=SC2016 # the inner script's own $1/$2, expanded by the inner bash
  printf '%s\n' "$2" | timeout "$API_TIMEOUT" bash -c 'IFS= read -r line && exec 3<>"/dev/tcp/$1/$2" && printf "%s\n" "$line" >&3 && cat <&3' \
    api_exchange "$host" "$port" 2>&1
}

# api_call HOST:PORT VERB [FIELD...]: prints the response body; on failure prints the reason and returns 1.
# Empty fields travel as "-"; tabs and newlines inside a field become blanks.
api_call() {
  local endpoint=$1 request reply field
  local -a fields=()
  shift
  for field in "$@"; do
    field=${field//[$'\t\n']/ }
    fields+=("${field:--}")
  done
  request=$(IFS=$'\t'; printf '%s' "${fields[*]}")
  if ! reply=$(api_exchange "$endpoint" "$request"); then
    printf 'dial tcp %s: %s\n' "$endpoint" "$(connect_error "$reply")"
    return 1
  fi
  case $reply in
    OK) return 0 ;;
    OK$'\n'*) printf '%s\n' "${reply#OK$'\n'}" ;;
    "ERROR "*) printf '%s\n' "${reply#ERROR }"; return 1 ;;
    *) printf 'unexpected answer from %s: %s\n' "$endpoint" "${reply:0:200}"; return 1 ;;
  esac
}

# Turns bash's /dev/tcp complaint into the tail of a Go dial error.
connect_error() {
  case $1 in
    *"Connection refused"*) echo "connect: connection refused" ;;
    *"No route to host"*) echo "connect: no route to host" ;;
    *"Name or service not known"* | *"not known"*) echo "lookup: no such host" ;;
    "") echo "i/o timeout" ;;
    *) printf '%s\n' "${1##*: }" ;;
  esac
}

# "sha256:<hex>" of the DER SubjectPublicKeyInfo of the PEM certificate FILE, as kubeadm pins CA keys
# (--discovery-token-ca-cert-hash). Walks the DER with od instead of needing openssl:
# Certificate -> TBSCertificate -> [version] serial signature issuer validity subject SubjectPublicKeyInfo.
ca_cert_hash() {
  local hex at
  hex=$(sed '/-----/d' "$1" | base64 -d | od -An -v -tx1 | tr -d ' \n') || return 1
  der_header "$hex" 0 30 || return 1
  at=$((DER_HEADER * 2))
  der_header "$hex" "$at" 30 || return 1
  at=$((at + DER_HEADER * 2))
  der_header "$hex" "$at" || return 1
  [[ $DER_TAG == a0 ]] && at=$((at + (DER_HEADER + DER_LENGTH) * 2))
  for _ in serial signature issuer validity subject; do   # skipped to reach SubjectPublicKeyInfo
    der_header "$hex" "$at" || return 1
    at=$((at + (DER_HEADER + DER_LENGTH) * 2))
  done
  der_header "$hex" "$at" 30 || return 1
  printf 'sha256:%s\n' "$(hex_to_bytes "${hex:at:(DER_HEADER + DER_LENGTH) * 2}" | sha256sum | cut -d' ' -f1)"
}

# der_header HEX OFFSET [TAG]: reads the DER tag and length at OFFSET (in hex digits) into DER_TAG, DER_HEADER
# (header size in bytes) and DER_LENGTH (content size in bytes); fails when TAG is given and differs.
der_header() {
  local hex=$1 at=$2 first count
  DER_TAG=${hex:at:2}
  [[ -n $DER_TAG && (-z ${3:-} || $DER_TAG == "$3") ]] || return 1
  first=$((16#${hex:at+2:2}))
  if ((first < 128)); then
    DER_LENGTH=$first DER_HEADER=2
  else
    count=$((first - 128))
    DER_LENGTH=$((16#${hex:at+4:count*2})) DER_HEADER=$((2 + count))
  fi
}

hex_to_bytes() {
  local escaped
  # shellcheck disable=SC2001 # every pair of characters: no parameter expansion does that
  escaped=$(sed 's/../\\x&/g' <<<"$1")
  printf '%b' "$escaped"
}

# The cluster-info signature a joining node checks: stands in for the JWS (HMAC keyed with the bootstrap token)
# the real cluster-info ConfigMap carries, so a node holding the wrong token secret notices.
cluster_info_signature() {
  local token=$1 ca_file=$2
  { printf '%s\n' "$token"; cat "$ca_file"; } | sha256sum | cut -d' ' -f1
}

# write_kubeconfig FILE SERVER_URL USER: a kubeconfig like kubeadm's, authenticating with the stub's admin pair.
write_kubeconfig() {
  local file=$1 server=$2 user=$3
  mkdir -p "$(dirname "$ROOT$file")"
  cat >"$ROOT$file" <<EOF
apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: $(base64 -w0 "$STUB_PKI/ca.crt")
    server: $server
  name: kubernetes
contexts:
- context:
    cluster: kubernetes
    user: $user
  name: $user@kubernetes
current-context: $user@kubernetes
kind: Config
preferences: {}
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 "$STUB_PKI/admin.crt")
    client-key-data: $(base64 -w0 "$STUB_PKI/admin.key")
EOF
  chmod 600 "$ROOT$file"
}

# HOST:PORT of the server in a kubeconfig (its first cluster).
kubeconfig_endpoint() {
  local server
  server=$(sed -n 's/^ *server: *//p' "$1" | head -n 1)
  server=${server#https://}
  printf '%s\n' "${server%%/*}"
}

# The API endpoint this host's admin.conf names, or a kubeadm-like failure.
admin_endpoint() {
  local conf=$ROOT$KUBE_DIR/admin.conf
  [[ -f $conf ]] || kubeadm_fail "failed to load admin kubeconfig: open $KUBE_DIR/admin.conf: no such file or directory"
  kubeconfig_endpoint "$conf"
}
