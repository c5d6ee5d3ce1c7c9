#!/bin/bash
# Seed the CNCF distribution registry's filesystem storage from a kube-bundle OCI layout, by hard links.
#   seed-registry.sh <plan: installer/registry-seed.txt> <OCI layout dir: images/> <registry root dir>
# The registry must be stopped (it caches descriptors in memory). Safe to re-run: every step is idempotent.
# Plan lines are documented in kube-bundle's src/core/build/seed-plan.ts.
set -euo pipefail
plan=$1 layout=$2 root=$3
store=$root/docker/registry/v2
[ -r "$plan" ] || { echo "seed-registry: cannot read plan $plan" >&2; exit 2; }
[ -d "$layout/blobs/sha256" ] || { echo "seed-registry: $layout is not an OCI layout" >&2; exit 2; }

link_file() {  # <path> <digest>: the registry's link files hold the digest string, no newline
  mkdir -p "${1%/*}"
  [ -f "$1" ] && [ "$(cat "$1")" = "$2" ] && return
  printf '%s' "$2" > "$1.tmp" && mv -f "$1.tmp" "$1"
}

n=0
while read -r op a b c; do
  case $op in
    blob)
      dir=$store/blobs/sha256/${a:0:2}/$a
      [ -f "$dir/data" ] && { n=$((n + 1)); continue; }
      mkdir -p "$dir"
      ln -f "$layout/blobs/sha256/$a" "$dir/data" 2>/dev/null || cp "$layout/blobs/sha256/$a" "$dir/data"
      n=$((n + 1)) ;;
    layer)    link_file "$store/repositories/$a/_layers/sha256/$b/link" "sha256:$b" ;;
    manifest) link_file "$store/repositories/$a/_manifests/revisions/sha256/$b/link" "sha256:$b" ;;
    tag)
      link_file "$store/repositories/$a/_manifests/tags/$b/index/sha256/$c/link" "sha256:$c"
      link_file "$store/repositories/$a/_manifests/tags/$b/current/link" "sha256:$c" ;;
    '') ;;
    *) echo "seed-registry: unknown plan line: $op $a $b $c" >&2; exit 2 ;;
  esac
done < "$plan"
echo "seed-registry: $n blobs in $root"
