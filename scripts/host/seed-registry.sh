#!/bin/bash
# Seed the CNCF distribution registry's filesystem storage from a kube-bundle OCI layout, by hard links.
#   seed-registry.sh <plan: installer/registry-seed.txt> <OCI layout dir: images/> <registry root dir>
# Adds to what the storage holds, never removes: an upgrade seeds a newer bundle's images while the registry serves
# (only new digests and tags appear; a link is replaced by a rename). Safe to re-run after being cut at any line: a
# blob is in place only once whole (a hard link, or a copy renamed into place), and every link file is written
# again on every run, so one cut half-way through its write is whole after the next.
# Plan lines are documented in kube-bundle's src/core/builder/seed-plan.ts. Speed: one mkdir for every directory,
# link files written by the shell itself, one `ln` per blob not yet there.
set -euo pipefail
plan=$1 layout=$2 root=$3
store=$root/docker/registry/v2
[ -r "$plan" ] || { echo "seed-registry: cannot read plan $plan" >&2; exit 2; }
[ -d "$layout/blobs/sha256" ] || { echo "seed-registry: $layout is not an OCI layout" >&2; exit 2; }

blobs=() dirs=() links=() digests=()
while read -r op a b c; do
  case $op in
    blob)     blobs+=("$a"); dirs+=("$store/blobs/sha256/${a:0:2}/$a") ;;
    layer)    links+=("$store/repositories/$a/_layers/sha256/$b"); digests+=("sha256:$b") ;;
    manifest) links+=("$store/repositories/$a/_manifests/revisions/sha256/$b"); digests+=("sha256:$b") ;;
    tag)      links+=("$store/repositories/$a/_manifests/tags/$b/index/sha256/$c" "$store/repositories/$a/_manifests/tags/$b/current")
              digests+=("sha256:$c" "sha256:$c") ;;
    '') ;;
    *) echo "seed-registry: unknown plan line: $op $a $b $c" >&2; exit 2 ;;
  esac
done < "$plan"

mkdir -p "${dirs[@]}" "${links[@]}"
for hex in "${blobs[@]}"; do
  src=$layout/blobs/sha256/$hex data=$store/blobs/sha256/${hex:0:2}/$hex/data
  [ "$data" -ef "$src" ] && continue                 # linked by an earlier run (a builtin test: no process per blob)
  if [ ! -e "$src" ]; then                           # a differential bundle: the blob came with the bundle it was made against
    [ -f "$data" ] && continue
    echo "seed-registry: blob sha256:$hex is neither in $layout nor in the registry: install the bundle this one was made against first" >&2; exit 1
  fi
  ln -f "$src" "$data" 2>/dev/null && continue       # a link is whole or absent
  # another filesystem: copied under a temporary name, so a cut copy is never taken for the blob
  [ -f "$data" ] && cmp -s "$src" "$data" && continue
  cp "$src" "$data.tmp" && mv -f "$data.tmp" "$data"
done
# The registry's link files hold the digest string, without a newline. One that already holds it is left alone and
# another is replaced by a rename, so a registry that serves during an upgrade never reads a link half written.
for i in "${!links[@]}"; do
  f=${links[$i]}/link cur=
  if [ -f "$f" ]; then IFS= read -r cur < "$f" || true; fi   # no newline: read fails yet fills cur
  [ "$cur" = "${digests[$i]}" ] && continue
  printf '%s' "${digests[$i]}" > "$f.tmp" && mv -f "$f.tmp" "$f"
done
echo "seed-registry: ${#blobs[@]} blobs in $root"
