#!/bin/bash
# Prepares .gpu/ (git-ignored) for bench/gpu.sh on the lent GPU machine, which has no Deno and no
# package registry: ../shared/gpu/prepare.sh with every entry file gpu.sh runs, then the one
# trim that keeps the tree that travels under the device tool's 64 MiB: of the npm package
# @cortex-js/compute-engine (46 MB, reached through the verifier by bench/rl_step_bench.ts) only
# package.json and dist/esm-min/latex-syntax.js stay, the one self-contained file
# verify/parse_answer.ts loads. .gpu/ is then about 47 MB (92 MB untrimmed).
#   bash bench/gpu_prepare.sh      (on the development machine, in the checkout)
set -euo pipefail
cd "$(dirname "$0")/.."
shared=../shared/gpu
[ -d "$shared" ] || shared=shared/gpu
"$shared/prepare.sh" bench/matmul_bench.ts bench/forward_bench.ts bench/generate_bench.ts \
  bench/train_step_bench.ts bench/objective_step_bench.ts bench/rl_step_bench.ts \
  bench/attention_bench.ts bench/fusion_bench.ts bench/perf_table.ts
for pkg in .gpu/deno_dir/npm/registry.npmjs.org/@cortex-js/compute-engine/*/; do
  [ -f "$pkg/dist/esm-min/latex-syntax.js" ] || {
    echo "gpu_prepare: $pkg has no dist/esm-min/latex-syntax.js: check what the verifier imports" >&2
    exit 1
  }
  find "$pkg" -type f ! -path "*/dist/esm-min/latex-syntax.js" ! -name package.json -delete
  find "$pkg" -type d -empty -delete
done
du -sh .gpu | sed 's/^/trimmed .gpu: /'
