#!/usr/bin/env bash
# Installs the S3-compatible server the S3 tests start (test/fixtures/s3-server.ts): MinIO
# RELEASE.2025-09-07T16-13-09Z, built from source with `go install` into .cache/bin/minio
# (git-ignored). Needs Go >= 1.24 and the Go module proxy; no Docker, no C compiler.
#
# Idempotent: does nothing when .cache/bin/minio is there at the pinned version (the stamp file
# .cache/bin/minio.version; a `go install` build reports its version as DEVELOPMENT.GOGET).
# The first build downloads ~500 modules and compiles for several minutes on two cores.
# Prints one line; the build's own output goes to .cache/install-s3-server.log.
set -euo pipefail
cd "$(dirname "$0")/.."

RELEASE=RELEASE.2025-09-07T16-13-09Z
# The Go proxy knows MinIO's RELEASE tags (not semver) only as this pseudo-version of the same commit.
MODULE_VERSION=v0.0.0-20250907161309-07c3a429bfed

bin_dir=$PWD/.cache/bin
stamp=$bin_dir/minio.version
log=$PWD/.cache/install-s3-server.log

if [ -x "$bin_dir/minio" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$MODULE_VERSION" ]; then
  echo "install-s3-server: minio $RELEASE already in .cache/bin"
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  echo "install-s3-server: Go >= 1.24 is needed to build minio (https://go.dev/dl/)" >&2
  exit 1
fi

mkdir -p "$bin_dir"
rm -f "$stamp"
start=$(date +%s)
# CGO off: a static binary, as MinIO's own releases are, and no C toolchain needed.
# go.mod asks for go1.24; an older local Go fetches that toolchain by itself (GOTOOLCHAIN=auto).
if ! CGO_ENABLED=0 GOBIN="$bin_dir" go install "github.com/minio/minio@$MODULE_VERSION" >"$log" 2>&1; then
  echo "install-s3-server: building minio $RELEASE failed; last lines of $log:" >&2
  tail -n 20 "$log" >&2
  exit 1
fi
echo "$MODULE_VERSION" >"$stamp"
echo "install-s3-server: built minio $RELEASE into .cache/bin in $(($(date +%s) - start)) s"
