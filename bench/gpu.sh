#!/bin/bash
# Every benchmark at full size on the lent GPU, with the PyTorch baselines on the same card in the
# same run, then one table of ratios (bench/perf_table.ts). Prepare on the development machine:
#   ../shared/gpu/prepare.sh bench/matmul_bench.ts bench/forward_bench.ts bench/generate_bench.ts \
#     bench/train_step_bench.ts bench/objective_step_bench.ts bench/rl_step_bench.ts \
#     bench/attention_bench.ts bench/perf_table.ts
# then run on the GPU machine (the device tool runs it in the checkout; $OUT comes back):
#   bash bench/gpu.sh
# It writes $OUT/perf.log (every line) and $OUT/perf.md (the table) when $OUT is set. Each part has
# its own time limit, so one that hangs does not cost the rest.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/halo_perf}
mkdir -p "$out"
log="$out/perf.log"
: > "$log"
run() { # run LIMIT_S CMD...: one part, its output appended to the log
  local limit=$1
  shift
  echo "### $*" | tee -a "$log"
  timeout "$limit" "$@" 2>&1 | grep -v XDG_RUNTIME_DIR | tee -a "$log"
  echo "### exit ${PIPESTATUS[0]}" | tee -a "$log"
}
export HALO_BENCH_FULL=1
deno_run=(bash .gpu/run.sh deno)
flags=(--no-lock --cached-only --node-modules-dir=none -A)
[ -f /usr/bin/nvidia-smi ] && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee -a "$log"
torch_dir=../shared/gpu
[ -d "$torch_dir" ] || torch_dir=shared/gpu
run 240 python3 "$torch_dir/torch_matmul.py"
run 600 python3 "$torch_dir/torch_baselines.py"
for b in matmul_bench attention_bench forward_bench generate_bench train_step_bench objective_step_bench \
  rl_step_bench; do
  run 300 "${deno_run[@]}" bench "${flags[@]}" "bench/$b.ts"
done
"${deno_run[@]}" run "${flags[@]}" bench/perf_table.ts "$log" | tee "$out/perf.md"
