# shellcheck shell=bash disable=SC2034  # globals set here are read by the other modules
# Base of the kubeadm stub and of its API endpoint handler (kube-bundle test fixture, not the real kubeadm):
# paths, the invocation log, error exits, flag parsing and queries over flattened YAML.
#
# KUBE_STUB_ROOT (default empty) prefixes every fixed path the stub reads or writes (/etc/kubernetes,
# /var/lib/kube-stub, /var/log/kube-stub.log, /proc/sys/..., the sockets it checks), so the unit tests can run it
# on a developer machine. Its own files (this library, the test PKI) are found beside the script. Paths given on the command line (--config F, -f F) are used as given. Paths handed to
# other programs (containerd's hosts dir, the CRI socket in kubelet flags) stay the host's own.

ROOT=${KUBE_STUB_ROOT:-}
ROOT=${ROOT%/}
readonly ROOT
readonly KUBE_VERSION=v@VERSION@
readonly STUB_LIB=$STUB_LIB_DIR   # set by the script sourcing this file
readonly STATE_DIR=$ROOT/var/lib/kube-stub
readonly CLUSTER_DIR=$STATE_DIR/cluster   # the cluster's data; only on the host that ran `kubeadm init`
readonly NODE_ENV=$STATE_DIR/node.env     # this host's node: runtime, role, where its API endpoint forwards
readonly LOG_FILE=$ROOT/var/log/kube-stub.log
readonly CONFIG_COPY_DIR=/var/log/kube-stub
readonly KUBE_DIR=/etc/kubernetes
readonly API_PORT=6443
readonly ETCD_DATA_DIR=/var/lib/etcd   # etcd.local.dataDir's default

# Formats kubeadm validates (node names are RFC 1123 subdomains).
readonly DNS1123_SUBDOMAIN='^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$'
readonly TOKEN_FORMAT='^[a-z0-9]{6}\.[a-z0-9]{16}$'
readonly CERTIFICATE_KEY_FORMAT='^[0-9a-f]{64}$'
readonly CA_HASH_FORMAT='^sha256:[0-9a-f]{64}$'

# Appends the invocation line "TIME PROGRAM ARGS..." (args shell-quoted) to /var/log/kube-stub.log. With a
# config file it also saves a copy as /var/log/kube-stub/<line number>-<command>.yaml and names both on the line,
# with the file's mode (it may hold a bootstrap token: tests check that it was private).
# Best effort: a stub that cannot write its log (not root) still does its job. A kubeadm that is not installed
# (run from an unpacked deb, as `bundle build` does for `config images list`) leaves no log on that machine.
stub_log() {
  local program=$1 config=$2 command=$3 line copy mode n
  shift 3
  [[ $STUB_LIB -ef $ROOT/usr/lib/kube-stub ]] || return 0
  line="$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ) $program"
  (($#)) && line+=$(printf ' %q' "$@")
  mkdir -p "${LOG_FILE%/*}" "$ROOT$CONFIG_COPY_DIR" 2>/dev/null && touch "$LOG_FILE" 2>/dev/null || return 0
  # shellcheck disable=SC2094 # the log is counted, then appended to, under its own lock (fd 9): never both at once
  {
    flock 9
    if [[ -n $config ]]; then
      n=$(($(wc -l <"$LOG_FILE") + 1))
      copy=$CONFIG_COPY_DIR/$n-$command.yaml
      mode=$(stat -c %a -- "$config" 2>/dev/null) || mode="?"
      cp -- "$config" "$ROOT$copy" 2>/dev/null || copy="(unreadable)"
      line+=" # config $config (mode $mode) saved as $copy"
    fi
    printf '%s\n' "$line" >&9
  } 9>>"$LOG_FILE"
}

# stub_note MESSAGE: a line "<time> kubeadm # MESSAGE" in the invocation log (what a command changed, for tests).
stub_note() {
  [[ $STUB_LIB -ef $ROOT/usr/lib/kube-stub ]] || return 0
  { flock 9; printf '%s kubeadm # %s\n' "$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)" "$*" >&9; } 9>>"$LOG_FILE" 2>/dev/null || true
}

# kubeadm's way of failing: the error, its hint about --v=5, exit 1.
kubeadm_fail() {
  printf '%s\nTo see the stack trace of this error execute with --v=5 or higher\n' "$*" >&2
  exit 1
}

# For argument loops: `take VAR "$@"` stores the value of the flag in $1 ("--flag=value" or "--flag value") in
# VAR and sets SHIFT to the number of arguments used.
take() {
  local var=$1
  shift
  if [[ $1 == --*=* ]]; then
    printf -v "$var" '%s' "${1#*=}"
    SHIFT=1
  elif (($# >= 2)); then
    printf -v "$var" '%s' "$2"
    SHIFT=2
  else
    kubeadm_fail "flag needs an argument: ${1%%=*}"
  fi
}

# Reads KEY from a KEY=value file (the stub's state files); prints nothing when either is missing.
kv_get() {
  if [[ -f $1 ]]; then sed -n "s/^$2=//p" "$1" | head -n 1; fi
}

# Sets KEY=value in a KEY=value file, creating it when needed.
kv_set() {
  local file=$1 key=$2 value=$3 rest=""
  [[ -f $file ]] && rest=$(grep -v "^$key=" "$file" || true)
  printf '%s\n' ${rest:+"$rest"} "$key=$value" >"$file.new" && mv "$file.new" "$file"
}

# 32 random bytes as 64 lowercase hex characters (a certificate key).
random_hex64() {
  local out="" i
  for i in 1 2 3 4 5 6 7 8; do out+=$(printf '%08x' "$SRANDOM"); done
  printf '%s\n' "$out"
}

# N random characters from [a-z0-9] (bootstrap token parts).
random_token_chars() {
  local chars=abcdefghijklmnopqrstuvwxyz0123456789 out="" i
  for ((i = 0; i < $1; i++)); do out+=${chars:SRANDOM % 36:1}; done
  printf '%s\n' "$out"
}

# Seconds in a Go duration as kubeadm takes them for token TTLs ("24h0m0s", "1h30m", "90s"; "0" = forever);
# fails on anything else.
duration_seconds() {
  local rest=$1 total=0 unit
  [[ $rest =~ ^([0-9]+[hms])+$ || $rest == 0 ]] || return 1
  while [[ $rest =~ ^([0-9]+)([hms])(.*)$ ]]; do
    case ${BASH_REMATCH[2]} in
      h) unit=3600 ;;
      m) unit=60 ;;
      s) unit=1 ;;
    esac
    total=$((total + 10#${BASH_REMATCH[1]} * unit))
    rest=${BASH_REMATCH[3]}
  done
  printf '%s\n' "$total"
}

random_token() { printf '%s.%s\n' "$(random_token_chars 6)" "$(random_token_chars 16)"; }

sha256_of() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }

# version_compare A B: prints -1, 0 or 1 as vMAJOR.MINOR.PATCH A is older than, equal to or newer than B.
version_compare() {
  local a=${1#v} b=${2#v} i
  local -a x y
  IFS=. read -r -a x <<<"$a"
  IFS=. read -r -a y <<<"$b"
  for i in 0 1 2; do
    if ((10#${x[i]:-0} != 10#${y[i]:-0})); then
      if ((10#${x[i]:-0} > 10#${y[i]:-0})); then echo 1; else echo -1; fi
      return
    fi
  done
  echo 0
}

version_newer() { [[ $(version_compare "$1" "$2") == 1 ]]; }

# --- flattened YAML (see yaml-flatten.awk): DOC<TAB>PATH<TAB>VALUE lines, queried from $FLAT -----------------

# Flattens FILE into FLAT; fails naming the file and line on YAML it cannot read.
flatten_yaml_file() {
  local file=$1 err
  [[ -r $file ]] || kubeadm_fail "unable to read config from \"$file\": open $file: no such file or directory"
  err=$(mktemp)
  if ! FLAT=$(awk -f "$STUB_LIB/yaml-flatten.awk" "$file" 2>"$err"); then
    local message
    message=$(cat "$err")
    rm -f "$err"
    kubeadm_fail "unable to read config from \"$file\": error converting YAML to JSON: yaml: $message"
  fi
  rm -f "$err"
}

# flat_get DOC PATH: the value at PATH (empty when absent or null).
flat_get() {
  awk -F'\t' -v d="$1" -v p="$2" '$1 == d && $2 == p { print $3; exit }' <<<"$FLAT"
}

# flat_has DOC PATH: true when PATH holds a non-null value or anything below it.
flat_has() {
  awk -F'\t' -v d="$1" -v p="$2" '
    $1 == d && (($2 == p && $3 != "") || index($2, p ".") == 1) { found = 1; exit }
    END { exit !found }' <<<"$FLAT"
}

# flat_items DOC PATH: the scalars of the sequence at PATH, one per line, in order.
flat_items() {
  awk -F'\t' -v d="$1" -v p="$2" '
    $1 == d && index($2, p ".") == 1 && substr($2, length(p) + 2) ~ /^[0-9]+$/ { print $3 }' <<<"$FLAT"
}

# flat_count DOC PATH: how many items the sequence at PATH has (also when the items are mappings).
flat_count() {
  awk -F'\t' -v d="$1" -v p="$2" '
    $1 == d && index($2, p ".") == 1 {
      rest = substr($2, length(p) + 2); sub(/\..*/, "", rest)
      if (rest ~ /^[0-9]+$/ && rest + 1 > n) n = rest + 1
    }
    END { print n + 0 }' <<<"$FLAT"
}

# flat_docs: the document numbers present, in order.
flat_docs() {
  cut -f1 <<<"$FLAT" | uniq
}

# flat_doc_lines DOC: the PATH<TAB>VALUE lines of one document.
flat_doc_lines() {
  awk -F'\t' -v d="$1" '$1 == d { print $2 "\t" $3 }' <<<"$FLAT"
}
