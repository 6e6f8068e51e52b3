#!/usr/bin/env bash
# Builds llama.cpp's `llama-server` from the source that npm's node-llama-cpp package ships
# (`llama/gitRelease.bundle`, a git bundle) and prints the binary's path on stdout.
#
# The binary is cached outside the clone, as ${HALO_LLAMA_CACHE:-$HOME/.cache/halo}/llama-server-<commit>,
# and rebuilt only when missing (about 8 minutes on 2 cores). Progress goes to stderr.
#
# Env: HALO_LLAMA_CACHE (cache folder), HALO_LLAMA_BUNDLE (a gitRelease.bundle already on disk; otherwise
# `npm pack node-llama-cpp@3.21.1` fetches it), HALO_LLAMA_JOBS (make -j, default 2).
set -euo pipefail

PKG="node-llama-cpp@3.21.1"
CACHE="${HALO_LLAMA_CACHE:-$HOME/.cache/halo}"
JOBS="${HALO_LLAMA_JOBS:-2}"
mkdir -p "$CACHE"

bundle="${HALO_LLAMA_BUNDLE:-$CACHE/node-llama-cpp-3.21.1.bundle}"
if [ ! -s "$bundle" ]; then
  echo "build_llama_server: fetching $PKG (for llama/gitRelease.bundle)" >&2
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack "$PKG" --silent >/dev/null)
  tar xzf "$tmp"/node-llama-cpp-*.tgz -C "$tmp" package/llama/gitRelease.bundle
  mv "$tmp/package/llama/gitRelease.bundle" "$bundle.part"
  mv "$bundle.part" "$bundle"
fi

commit="$(git bundle list-heads "$bundle" | head -n 1 | awk '{print substr($1, 1, 12)}')"
if [ -z "$commit" ]; then
  echo "build_llama_server: cannot read a head from bundle \"$bundle\"" >&2
  exit 1
fi
bin="$CACHE/llama-server-$commit"
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi

src="$CACHE/llama.cpp-$commit"
if [ ! -d "$src/.git" ]; then
  rm -rf "$src"
  echo "build_llama_server: cloning $commit into $src" >&2
  git clone --quiet "$bundle" "$src"
fi
echo "build_llama_server: building llama-server (-j$JOBS; ~8 min on 2 cores)" >&2
start=$(date +%s)
# Static libraries so the cached binary does not point into the build folder.
cmake -S "$src" -B "$src/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF -DLLAMA_OPENSSL=OFF \
  -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF >&2
cmake --build "$src/build" --target llama-server -j "$JOBS" >&2
cp "$src/build/bin/llama-server" "$bin.part"
mv "$bin.part" "$bin"
echo "build_llama_server: built in $(($(date +%s) - start)) s" >&2
rm -rf "$src"
echo "$bin"
