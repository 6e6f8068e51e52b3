import assert from "node:assert/strict";
import { scaleBySchedule } from "./scale_by_schedule.ts";

Deno.test("scaleBySchedule() scales by schedule(count) with count from 0", () => {
  const seen: number[] = [];
  const t = scaleBySchedule((step) => {
    seen.push(step);
    return step + 1;
  });
  const g = { w: new Float32Array([1, -2]) };
  let state = t.init(g);
  const outs: Float32Array[] = [];
  for (let i = 0; i < 3; i++) {
    const r = t.update(g, state);
    state = r.state;
    outs.push(r.updates.w);
    assert.deepEqual(r.metrics, { "optim/schedule": i + 1 });
  }
  assert.deepEqual(seen, [0, 1, 2]);
  assert.deepEqual(outs, [[1, -2], [2, -4], [3, -6]].map((x) => new Float32Array(x)));
  assert.deepEqual(state, { count: 3 });
  assert.throws(() => scaleBySchedule(() => NaN).update(g, { count: 0 }), RangeError);
});
