#!/usr/bin/env bash
# Release build: one static, CGO-free binary per target, each packed as
# sqlite-backup_<version>_<os>_<arch>.tar.gz with README.md, LICENSE and docs/ (the README links into it),
# plus SHA256SUMS over the archives.
#
#   scripts/dist.sh                       # all default targets into dist/
#   scripts/dist.sh linux/amd64 linux/arm64
#   VERSION=1.2.0 OUT=/tmp/rel scripts/dist.sh
#
# Targets are GOOS/GOARCH, and linux/arm/7 or linux/arm/6 for GOARM.
# VERSION defaults to `git describe` of the last v* tag; the build date is the commit date
# (or SOURCE_DATE_EPOCH), so two builds of one commit give the same bytes.
set -euo pipefail
cd "$(dirname "$0")/.."

targets=("$@")
if ((${#targets[@]} == 0)); then
  targets=(linux/amd64 linux/arm64 linux/386 linux/arm/7 linux/arm/6)
fi
out=${OUT:-dist}

commit=$(git rev-parse HEAD)
if [[ -n $(git status --porcelain --untracked-files=no) ]]; then
  commit+="-dirty"
fi
dirty=""
[[ $commit == *-dirty ]] && dirty="-dirty"
# Untagged: 0.0.0-<commit>, so a version always starts with a number.
version=${VERSION:-$(git describe --tags --match 'v[0-9]*' --dirty 2>/dev/null || echo "0.0.0-${commit:0:12}$dirty")}
version=${version#v}
epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}
date=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)

ldflags="-s -w -X sqlite-backup/internal/cli.version=$version -X sqlite-backup/internal/cli.commit=$commit -X sqlite-backup/internal/cli.date=$date"

mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

archives=()
for t in "${targets[@]}"; do
  IFS=/ read -r goos goarch goarm <<<"$t"
  name=$goarch
  [[ $goarch == arm ]] && name="armv${goarm:?linux/arm needs a GOARM level: linux/arm/7}"
  base="sqlite-backup_${version}_${goos}_${name}"
  exe=sqlite-backup
  [[ $goos == windows ]] && exe=sqlite-backup.exe
  mkdir -p "$work/$base"
  start=$SECONDS
  CGO_ENABLED=0 GOOS=$goos GOARCH=$goarch GOARM=$goarm \
    go build -trimpath -ldflags "$ldflags" -o "$work/$base/$exe" .
  cp README.md LICENSE "$work/$base/"
  cp -r docs "$work/$base/"
  # Reproducible archive: fixed order, owner and mtime; gzip without a
  # name or timestamp.
  tar -C "$work" --sort=name --owner=0 --group=0 --numeric-owner \
    --mtime="@$epoch" -cf - "$base" | gzip -9n >"$out/$base.tar.gz"
  size=$(stat -c %s "$work/$base/$exe")
  echo "dist: $base.tar.gz (binary $size bytes, built in $((SECONDS - start))s)" >&2
  archives+=("$base.tar.gz")
done

# Keep SHA256SUMS to the archives of this version, so a rerun with fewer
# targets does not list stale files of another version.
(cd "$out" && sha256sum "${archives[@]}" >SHA256SUMS)
echo "dist: $out/SHA256SUMS" >&2
