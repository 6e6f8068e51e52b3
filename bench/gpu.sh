#!/bin/bash
# Every benchmark at full size on the lent GPU, with the PyTorch baselines on the same card in the
# same run, then one table of ratios (bench/perf_table.ts). Prepare on the development machine:
#   bash bench/gpu_prepare.sh
# (../shared/gpu/prepare.sh with every benchmark below, trimmed to fit the 64 MiB that travel)
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
# The whole script stops by HALO_GPU_BUDGET_S seconds (default 540: one device call is at most
# 600 s), keeping 15 s for the table: each part gets its own limit or what is left, whichever is
# less, and a part with under 20 s left is skipped (said in the log), so the table always comes.
budget=${HALO_GPU_BUDGET_S:-540}
t0=$SECONDS
run() { # run LIMIT_S CMD...: one part, its output appended to the log
  local limit=$1
  shift
  local left=$((budget - 15 - (SECONDS - t0)))
  ((left < limit)) && limit=$left
  if ((limit < 20)); then
    echo "### skipped (budget of ${budget} s spent): $*" | tee -a "$log"
    return
  fi
  echo "### $* (limit ${limit} s)" | tee -a "$log"
  timeout "$limit" "$@" 2>&1 | grep -v XDG_RUNTIME_DIR | tee -a "$log"
  echo "### exit ${PIPESTATUS[0]} after $((SECONDS - t0)) s" | tee -a "$log"
}
export HALO_BENCH_FULL=1
deno_run=(bash .gpu/run.sh deno)
flags=(--no-lock --cached-only --node-modules-dir=none -A)
[ -f /usr/bin/nvidia-smi ] && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee -a "$log"
torch_dir=../shared/gpu
[ -d "$torch_dir" ] || torch_dir=shared/gpu
# Most wanted first: each target's PyTorch side next to halo's, then the rest.
run 120 python3 "$torch_dir/torch_matmul.py"
run 120 "${deno_run[@]}" bench "${flags[@]}" bench/matmul_bench.ts
run 240 python3 "$torch_dir/torch_baselines.py"
for b in generate_bench train_step_bench rl_step_bench attention_bench fusion_bench forward_bench \
  objective_step_bench; do
  run 120 "${deno_run[@]}" bench "${flags[@]}" "bench/$b.ts"
done
"${deno_run[@]}" run "${flags[@]}" bench/perf_table.ts "$log" | tee "$out/perf.md"
