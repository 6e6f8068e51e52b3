// Private: the train backends' handling of HILO's load-balancing term: the `balanceWeight`
// option, the CPU rows' routing statistics summed into the batch's, the loss of per-layer
// statistics, and the `"loss/balance"` metric.
import type { CpuBalanceStats } from "../model/qwen3_cpu_layer.ts";
import type { ProjectionName } from "../model/tensor_table.ts";
import { moeBalanceLossRef } from "../kernels/moe_route/moe_balance_ref.ts";
import type { RowResult } from "./_cpu_rows.ts";
import type { LossOutput } from "./types.ts";

/** The `balanceWeight` option, checked (default 1). */
export function checkBalanceWeight(weight: number | undefined): number {
  const w = weight ?? 1;
  if (!(Number.isFinite(w) && w >= 0)) {
    throw new RangeError(
      `Cannot compute gradients: option "balanceWeight" must be a finite number ≥ 0: current ` +
        `value is ${w}`,
    );
  }
  return w;
}

/** The rows' HILO balance statistics summed (in row order): the batch's, per layer. */
export function sumBalanceStats(results: readonly RowResult[]): CpuBalanceStats[] {
  const sum: CpuBalanceStats[] = [];
  for (const r of results) {
    r.balanceStats?.forEach((layer, l) => {
      const into = sum[l] ??= {};
      for (const [p, s] of Object.entries(layer) as [ProjectionName, Float64Array][]) {
        const t = into[p] ??= new Float64Array(s.length);
        for (let i = 0; i < s.length; i++) t[i] += s[i];
      }
    });
  }
  return sum;
}

/** The balance loss of per-layer statistics: `moeBalanceLossRef` summed over projections. */
export function balanceLoss(stats: readonly CpuBalanceStats[]): number {
  let loss = 0;
  for (const layer of stats) {
    for (const s of Object.values(layer)) loss += moeBalanceLossRef(s!, (s!.length - 1) / 2);
  }
  return loss;
}

/** The term's output with the metric `"loss/balance"` when the call had a balance term. */
export function withBalanceMetric(out: LossOutput, balance: number | undefined): LossOutput {
  return balance === undefined
    ? out
    : { ...out, metrics: { ...out.metrics, "loss/balance": balance } };
}
