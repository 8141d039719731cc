/* Internal: the tensor-core attention backward (attention_bwd_mma.cu), called
 * by srlm_cuda_attention_bwd (attention_bwd.cu) when the inputs qualify. */
#pragma once

#include "attention_tiles.cuh"

namespace attn {

/* True when the tensor-core backward takes these inputs: bf16, head_dim 64 or
 * 128, and every row of q, k, v, dout, dq, dk, dv 16-byte aligned (pointer and
 * stride), for cp.async / 16-byte copies of whole head rows. */
bool bwd_mma_eligible(const Params &p, srlm_dtype dt, const srlm_view *dq, const srlm_view *dk,
                      const srlm_view *dv);

/* Blocks each GQA group's query heads are split over in the dkdv kernel (1:
 * one block per group, enough blocks already; else a divisor of group), from
 * the shape (len: the longest sequence's keys) and this device's
 * multiprocessor count, or srlm_cuda_attention_bwd_force_split's. */
int bwd_head_split(int B, int len, int nkv, int group);

/* The dk/dv and dq kernels on the tensor cores, given p with dout, lse and dvec
 * (the statistics pass already queued on the stream). With split > 1, `part`
 * is 16-byte aligned workspace for the fp32 partial dK and dV: 2 x split x B x
 * max_seq x nkv x hd floats (NULL: no split). Same outputs as the scalar
 * kernels: dq padding rows 0, dk/dv every row of each used slot (0 past
 * n_past + n_new). Deterministic, no atomics. */
srlm_status launch_bwd_mma(const Params &p, srlm_view *dq, srlm_view *dk, srlm_view *dv, int split, void *part,
                           cudaStream_t stream);

}  // namespace attn
