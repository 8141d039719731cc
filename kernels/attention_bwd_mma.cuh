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

/* dK, dV from split dkdv blocks' fp32 partials (laid out as launch_bwd_mma
 * describes): the parts added in order, dK scaled, each rounded once. */
srlm_status launch_dkdv_reduce(const Params &p, int split, const float *part_k, const float *part_v,
                               srlm_view *dk, srlm_view *dv, cudaStream_t stream);

/* launch_bwd_mma on Hopper's wgmma (attention_bwd_sm90.cu, sm_90a only; take
 * it where use_sm90(p.hd)): the same inputs, split, partials and outputs. */
srlm_status launch_bwd_sm90(const Params &p, srlm_view *dq, srlm_view *dk, srlm_view *dv, int split, void *part,
                            cudaStream_t stream);

/* The query-row tiles of `rows` rows a dk/dv block over keys k0 .. k0 +
 * tile - 1 of sequence b walks: from *first (rows before it see none of
 * these keys), *count of them (with packed sequences, none past the block's
 * last key's sequence); 0 for a block past the keys or a padding sequence. */
__device__ __forceinline__ void dkdv_row_tiles(const Params &p, int k0, int tile, int rows, int n_past, int n_new,
                                               int *first, int *count) {
    const int kv_end = n_past + n_new;
    *first = max(0, k0 - n_past) / rows * rows;
    const int end = k0 < kv_end ? row_hi(p, min(k0 + tile, kv_end) - 1, n_new) : 0;
    *count = *first < end ? (end - *first + rows - 1) / rows : 0;
}

/* A dk/dv step's row statistics into shared memory, by `threads` threads:
 * for rows tq0 .. tq0 + rows - 1 of head h (nq real, row0 their first view
 * row), lse in the log2 domain at st, D at st + rows, each row's first key at
 * fk; zeros past the real rows. */
__device__ __forceinline__ void load_row_stats(const Params &p, float *st, int *fk, int rows, int threads,
                                               int64_t row0, int tq0, int nq, int h) {
    for (int r = threadIdx.x; r < rows; r += threads) {
        st[r] = r < nq ? p.lse[(row0 + r) * p.nh + h] * kLog2e : 0.0f;
        st[rows + r] = r < nq ? p.dvec[(row0 + r) * p.nh + h] : 0.0f;
        fk[r] = r < nq ? key_lo(p, tq0 + r) : 0;
    }
}

/* The dk/dv and dq kernels' stores of one warp's accumulator rows. */
/* Writes this warp's 16 x HD accumulator (rows g and g+8 at row0 and row0 + 8
 * of the view, columns col0 ..) times scale as bf16; rows >= nrows are skipped
 * and rows >= nreal get 0. */
template <int HD>
__device__ __forceinline__ void store_rows(__nv_bfloat16 *out, int64_t ld, int64_t row0, int col0, int r0, int nrows,
                                           int nreal, const float (&acc)[HD / 8][4], float scale) {
    const int lane = threadIdx.x % 32, g = lane / 4, tig = lane % 4;
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int rr = r0 + g + 8 * r; /* row index that nrows / nreal count */
        if (rr >= nrows) continue;
        const bool real = rr < nreal;
        __nv_bfloat16 *o = out + (row0 + g + 8 * r) * ld + col0 + 2 * tig;
#pragma unroll
        for (int nt = 0; nt < HD / 8; nt++)
            *reinterpret_cast<__nv_bfloat162 *>(o + nt * 8) = __floats2bfloat162_rn(
                real ? acc[nt][2 * r] * scale : 0.0f, real ? acc[nt][2 * r + 1] * scale : 0.0f);
    }
}

/* Writes this warp's 16 x HD fp32 accumulator unscaled to a partial buffer
 * (rows of max_seq x ld floats per sequence): the rows r0 + g (+ 8) below nrows. */
template <int HD>
__device__ __forceinline__ void store_part(float *out, int64_t ld, int64_t row0, int col0, int r0, int nrows,
                                           const float (&acc)[HD / 8][4]) {
    const int lane = threadIdx.x % 32, g = lane / 4, tig = lane % 4;
#pragma unroll
    for (int r = 0; r < 2; r++) {
        if (r0 + g + 8 * r >= nrows) continue;
        float *o = out + (row0 + g + 8 * r) * ld + col0 + 2 * tig;
#pragma unroll
        for (int nt = 0; nt < HD / 8; nt++)
            *reinterpret_cast<float2 *>(o + nt * 8) = make_float2(acc[nt][2 * r], acc[nt][2 * r + 1]);
    }
}

}  // namespace attn
