#!/usr/bin/env bash
# Builds the binaries scripts/gpu_checks.sh runs on a GPU machine that has no Rust
# toolchain: one release build of `roformer` per GPU feature, stripped and gzipped, into
# BUNDLE_DIR (default .gpu/, which git ignores), with their sizes.
#
#   FEATURES="cuda wgpu" scripts/gpu_bundle.sh      # the default features
#
# Carry BUNDLE_DIR with a checkout (configs/, scripts/) and, there, from its root:
#
#   gunzip -f .gpu/*.gz && chmod +x .gpu/roformer-* &&
#     ROFORMER_BINS="cuda=.gpu/roformer-cuda wgpu=.gpu/roformer-wgpu" scripts/gpu_checks.sh
#
# The builds share CARGO_TARGET_DIR (default target/); each takes several minutes cold.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bundle="${BUNDLE_DIR:-.gpu}"
target="${CARGO_TARGET_DIR:-target}"
read -ra features <<<"${FEATURES:-cuda wgpu}"
mkdir -p "$bundle"
for feature in "${features[@]}"; do
  echo "== cargo build --release -p roformer-cli --features $feature"
  cargo build --release -p roformer-cli --features "$feature"
  out="$bundle/roformer-$feature"
  cp "$target/release/roformer" "$out.tmp"
  strip "$out.tmp"
  gzip -9 -c "$out.tmp" >"$out.gz.tmp"
  mv "$out.gz.tmp" "$out.gz"
  echo "$out.gz: $(du -h "$out.gz" | cut -f1) ($(du -h "$out.tmp" | cut -f1) stripped)"
  rm "$out.tmp"
done
