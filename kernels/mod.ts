/**
 * WGSL compute kernels: for each op a launcher (`encode*`, recording one dispatch into a compute
 * pass), its float64 reference (`*Ref`) and, for training, its backward.
 *
 * @module
 */
export * from "./adamw/adamw.ts";
export * from "./adamw/adamw_ref.ts";
export * from "./add/add.ts";
export * from "./add/add_ref.ts";
export * from "./attention/attention.ts";
export * from "./attention/attention_ref.ts";
export * from "./attention/attention_backward.ts";
export * from "./attention/attention_backward_ref.ts";
export * from "./clipped_pg/clipped_pg.ts";
export * from "./decode_advance/decode_advance.ts";
export * from "./decode_advance/decode_advance_ref.ts";
export * from "./embedding/embedding.ts";
export * from "./embedding/embedding_ref.ts";
export * from "./embedding/embedding_backward.ts";
export * from "./embedding/embedding_backward_ref.ts";
export * from "./grad_norm/grad_norm.ts";
export * from "./grad_norm/grad_norm_ref.ts";
export * from "./hidden_align/hidden_align.ts";
export * from "./hilo_gate_backward/hilo_gate_backward.ts";
export * from "./hilo_gate_backward/hilo_gate_backward_ref.ts";
export * from "./hilo_gate_rows/hilo_gate_rows.ts";
export * from "./hilo_gate_rows/hilo_gate_rows_ref.ts";
export * from "./hilo_grouped/hilo_grouped_backward.ts";
export * from "./hilo_grouped/hilo_grouped_expert.ts";
export * from "./hilo_grouped/hilo_grouped_index.ts";
export * from "./hilo_grouped/hilo_grouped_ref.ts";
export * from "./kv_write/kv_write.ts";
export * from "./kv_write/kv_write_ref.ts";
export * from "./logprob/logprob.ts";
export * from "./logprob/logprob_ref.ts";
export * from "./logprob/logprob_backward.ts";
export * from "./logprob/logprob_backward_ref.ts";
export * from "./matmul/matmul.ts";
export * from "./matmul/matmul_ref.ts";
export * from "./matmul/matmul_backward.ts";
export * from "./matmul/matmul_backward_ref.ts";
export * from "./matvec/matvec.ts";
export * from "./moe_route/moe_route.ts";
export * from "./moe_route/moe_route_ref.ts";
export * from "./moe_route/moe_route_backward.ts";
export * from "./moe_route/moe_route_backward_ref.ts";
export * from "./moe_route/moe_balance.ts";
export * from "./moe_route/moe_balance_ref.ts";
export * from "./qk_norm_rope/qk_norm_rope.ts";
export * from "./qk_norm_rope/qk_norm_rope_backward.ts";
export * from "./qk_norm_rope/qk_norm_rope_kv.ts";
export * from "./qk_norm_rope/qk_norm_rope_ref.ts";
export * from "./rms_norm/rms_norm.ts";
export * from "./rms_norm/rms_norm_ref.ts";
export * from "./rms_norm/rms_norm_backward.ts";
export * from "./rms_norm/rms_norm_backward_ref.ts";
export * from "./rope/rope.ts";
export * from "./rope/rope_ref.ts";
export * from "./rope/rope_backward.ts";
export * from "./rope/rope_backward_ref.ts";
export * from "./sample/sample.ts";
export * from "./sample/sample_ref.ts";
export * from "./sample/philox_ref.ts";
export * from "./swiglu/swiglu.ts";
export * from "./swiglu/swiglu_ref.ts";
export * from "./swiglu/swiglu_backward.ts";
export * from "./swiglu/swiglu_backward_ref.ts";
