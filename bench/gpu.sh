#!/bin/bash
# Every benchmark at full size on the lent GPU, with the PyTorch baselines on the same card in the
# same run, then one table of ratios (bench/perf_table.ts). Prepare on the development machine:
#   bash bench/gpu_prepare.sh
# (../shared/gpu/prepare.sh with every benchmark below, trimmed to fit the 64 MiB that travel, and
# the PyTorch scripts copied into .gpu/torch/: ../shared does not travel) then run on the GPU
# machine (the device tool runs it in the checkout with .gpu carried; $OUT comes back):
#   bash bench/gpu.sh
# It writes $OUT/perf.log (every line) and $OUT/perf.md (the table) when $OUT is set.
#
# Budget: the script stops by HALO_GPU_BUDGET_S seconds (default 480, so a 15-minute lease that
# takes ~2 min to start still returns the files), keeping 15 s for the table. The parts that feed
# the table run first, most wanted first, each with its own time limit; those limits add up to the
# budget less the 15 s (scaled when HALO_GPU_BUDGET_S is changed), so none of them is starved by
# another that hangs. The remaining benchmarks get whatever time is left; a part with under 20 s
# left is skipped (said in the log), so the table always comes.
#
# HALO_GPU_DRY_RUN=1 (for the development machine): the same parts at their small default sizes
# (no HALO_BENCH_FULL), with this machine's deno on the carried Deno cache (.gpu/deno_dir, so a
# missing package shows here), limits scaled to the budget (default 1500 s: about ×3), without
# the remaining benchmarks, and a table that reads the small shapes (perf_table.ts --any-size).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/halo_perf}
mkdir -p "$out"
log="$out/perf.log"
: > "$log"
dry=${HALO_GPU_DRY_RUN:-0}
flags=(--no-lock --cached-only --node-modules-dir=none --no-check -A)
if [ "$dry" = 1 ]; then
  budget=${HALO_GPU_BUDGET_S:-1500}
  deno_run=(env DENO_DIR="$PWD/.gpu/deno_dir" DENO_NO_UPDATE_CHECK=1 deno)
  table_flags=(--any-size)
  unset HALO_BENCH_FULL
  export HALO_MATMUL_VARIANTS=auto
else
  budget=${HALO_GPU_BUDGET_S:-480}
  deno_run=(bash .gpu/run.sh deno)
  table_flags=()
  # Full size; matmul_bench only times the kernel "auto" picks on the GEMM shapes.
  export HALO_BENCH_FULL=1 HALO_MATMUL_VARIANTS=auto
fi
t0=$SECONDS
# The limits (s) of the parts that feed the table, in the order they run; they add up to 465 s,
# the default budget less the 15 s kept for the table (torch_baselines.py: ~100 s on an H100).
declare -A cap=([torch_baselines]=150 [generate]=100 [train_step]=90 [torch_matmul]=25 [matmul]=60
  [attention]=40)
cap_sum=0
for c in "${cap[@]}"; do cap_sum=$((cap_sum + c)); done
scale_cap() { # scale_cap NAME: the part's limit, scaled so that the limits add up to budget − 15
  local c=$((cap[$1] * (budget - 15) / cap_sum))
  echo $((c < 1 ? 1 : c))
}
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
  # timeout signals the whole process group (bash .gpu/run.sh and the deno it starts).
  timeout --kill-after=5 "$limit" "$@" 2>&1 | grep -v XDG_RUNTIME_DIR | tee -a "$log"
  echo "### exit ${PIPESTATUS[0]} after $((SECONDS - t0)) s" | tee -a "$log"
}
deno_bench() { # deno_bench PART FILE: one halo benchmark file under its part's limit
  run "$(scale_cap "$1")" "${deno_run[@]}" bench "${flags[@]}" "$2"
}
torch_dir=""
for d in .gpu/torch ../shared/gpu shared/gpu; do
  [ -f "$d/torch_baselines.py" ] && torch_dir=$d && break
done
has_torch=1 # checked once (importing torch takes seconds)
[ -n "$torch_dir" ] && ! python3 -c "import torch; assert torch.cuda.is_available()" 2>/dev/null &&
  has_torch=0
torch() { # torch PART SCRIPT: one PyTorch baseline, when PyTorch with CUDA is there
  if [ -z "$torch_dir" ]; then
    echo "### skipped: no $2 in .gpu/torch, ../shared/gpu or shared/gpu (run bench/gpu_prepare.sh)" |
      tee -a "$log"
  elif [ "$has_torch" = 0 ]; then
    echo "### skipped: $torch_dir/$2 needs python3 with PyTorch and CUDA" | tee -a "$log"
  else
    run "$(scale_cap "$1")" python3 "$torch_dir/$2"
  fi
}
[ -f /usr/bin/nvidia-smi ] && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee -a "$log"
echo "### budget ${budget} s$([ "$dry" = 1 ] && echo ", dry run at small sizes"); PyTorch scripts: ${torch_dir:-none}" |
  tee -a "$log"
# The table's parts, most wanted first: each target's PyTorch side, then halo's.
torch torch_baselines torch_baselines.py
deno_bench generate bench/generate_bench.ts
deno_bench train_step bench/train_step_bench.ts
torch torch_matmul torch_matmul.py
deno_bench matmul bench/matmul_bench.ts
deno_bench attention bench/attention_bench.ts
# The rest, with what is left (not in a dry run: too slow on a software adapter).
if [ "$dry" != 1 ]; then
  for b in rl_step_bench merge_adapters_bench fusion_bench forward_bench objective_step_bench; do
    run 120 "${deno_run[@]}" bench "${flags[@]}" "bench/$b.ts"
  done
fi
"${deno_run[@]}" run "${flags[@]}" bench/perf_table.ts "${table_flags[@]}" "$log" | tee "$out/perf.md"
