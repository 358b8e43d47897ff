#!/usr/bin/env bash
# Builds the kavka image without pulling anything: a statically linked release binary
# (glibc, crt-static) staged under target/docker/rootfs, then `FROM scratch`.
#
#   deploy/build-image.sh [tag]      # default tag: kavka:dev (what docker-compose.yml runs)
#
# Environment: CARGO_TARGET_DIR is honoured; KAVKA_SKIP_CARGO=1 reuses the last binary.
set -euo pipefail
cd "$(dirname "$0")/.."
tag="${1:-kavka:dev}"
target_dir="${CARGO_TARGET_DIR:-target}"
triple=x86_64-unknown-linux-gnu

if [[ "${KAVKA_SKIP_CARGO:-0}" != 1 ]]; then
  echo "== building the static kavka binary (release, $triple, crt-static)"
  # The explicit --target keeps RUSTFLAGS away from build scripts and proc macros.
  RUSTFLAGS='-C target-feature=+crt-static' \
    cargo build --release --locked --target "$triple" -p kavka --bin kavka
fi
bin="$target_dir/$triple/release/kavka"
# A dynamic executable names its loader (PT_INTERP); FROM scratch has none.
if readelf -l "$bin" | grep -q INTERP; then
  echo "error: $bin is dynamically linked; it cannot run FROM scratch" >&2
  exit 1
fi

rootfs=target/docker/rootfs
rm -rf "$rootfs"
# /etc/kavka/secret: where compose mounts the controller secret's volume (a fresh volume
# takes this directory's owner, the image's uid).
mkdir -p "$rootfs/usr/local/bin" "$rootfs/var/lib/kavka" "$rootfs/tmp" "$rootfs/etc/kavka/secret"
cp "$bin" "$rootfs/usr/local/bin/kavka"
strip "$rootfs/usr/local/bin/kavka" 2>/dev/null || true
# A name for uid 10001, for tools that look it up.
printf 'kavka:x:10001:10001:kavka:/var/lib/kavka:/sbin/nologin\n' > "$rootfs/etc/passwd"
printf 'kavka:x:10001:\n' > "$rootfs/etc/group"

echo "== docker build -t $tag"
docker build -f deploy/Dockerfile -t "$tag" .
docker image ls "$tag" --format '{{.Repository}}:{{.Tag}} {{.Size}}'
