#!/bin/bash
# Prepares .gpu/ (git-ignored) for bench/gpu.sh on the lent GPU machine, which has no Deno and no
# package registry: ../shared/gpu/prepare.sh with every entry file gpu.sh runs, then the one
# trim that keeps the tree that travels under the device tool's 64 MiB: of the npm package
# @cortex-js/compute-engine (46 MB, reached through the verifier by bench/rl_step_bench.ts) only
# package.json and dist/esm-min/latex-syntax.js stay, the one self-contained file
# verify/parse_answer.ts loads. .gpu/ is then about 47 MB (92 MB untrimmed). Last, the PyTorch
# baselines (torch_matmul.py, torch_baselines.py) are copied into .gpu/torch/: the device tool
# carries the checkout and .gpu/, not ../shared, and bench/gpu.sh runs them from there.
#   bash bench/gpu_prepare.sh      (on the development machine, in the checkout)
set -euo pipefail
cd "$(dirname "$0")/.."
shared=../shared/gpu
[ -d "$shared" ] || shared=shared/gpu
prepare=$shared/prepare.sh
if [ ! -d .git ]; then
  # A git worktree (.git is a file): prepare.sh's line that adds /.gpu/ to .git/info/exclude
  # would fail there; .gitignore has .gpu/ (checked below), so run it without that line.
  prepare=$(mktemp)
  trap 'rm -f "$prepare"' EXIT
  grep -v '\.git/info/exclude' "$shared/prepare.sh" > "$prepare"
fi
bash "$prepare" bench/matmul_bench.ts bench/forward_bench.ts bench/generate_bench.ts \
  bench/train_step_bench.ts bench/objective_step_bench.ts bench/rl_step_bench.ts \
  bench/attention_bench.ts bench/fusion_bench.ts bench/merge_adapters_bench.ts bench/perf_table.ts
for pkg in .gpu/deno_dir/npm/registry.npmjs.org/@cortex-js/compute-engine/*/; do
  [ -f "$pkg/dist/esm-min/latex-syntax.js" ] || {
    echo "gpu_prepare: $pkg has no dist/esm-min/latex-syntax.js: check what the verifier imports" >&2
    exit 1
  }
  find "$pkg" -type f ! -path "*/dist/esm-min/latex-syntax.js" ! -name package.json -delete
  find "$pkg" -type d -empty -delete
done
mkdir -p .gpu/torch
cp "$shared/torch_matmul.py" "$shared/torch_baselines.py" .gpu/torch/
git check-ignore -q .gpu/torch/torch_baselines.py || {
  echo "gpu_prepare: .gpu/ is not git-ignored: the device tool would not carry it as an ignored path" >&2
  exit 1
}
du -sh .gpu | sed 's/^/trimmed .gpu: /'
echo "carry .gpu with the device call; PyTorch baselines: $(ls .gpu/torch | tr '\n' ' ')"
