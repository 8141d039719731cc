/* Private helpers shared by attention.cu, attention_bwd.cu and
 * attention_decode.cu: the kernel parameter block, warp reductions, the
 * mma/ldmatrix wrappers and the host-side argument checks (element loads and
 * stores by dtype: dtype_io.cuh). */
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>

#include "attention.h"
#include "cuda_check.h"
#include "dtype_io.cuh"

namespace attn {

using namespace dtype_io; /* ld and from_f32 for the kernels of attention*.cu */

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;
constexpr int kMaxHeadDim = 256;
constexpr size_t kDefaultSmem = 48 * 1024; /* dynamic smem a block gets without opting in */

/* Everything a kernel needs, passed by value. Scores live in the log2 domain:
 * s2 = q.k * scale * log2(e), so softmax weights are exp2(s2 - max). */
struct Params {
    const void *q, *k, *v, *dout;
    void *out;
    int64_t ldq, ldk, ldv, lddo, ldo; /* row strides in elements */
    int B, T, nh, nkv, hd, group, max_seq;
    const int *slot, *n_past, *n_new; /* device arrays (B) */
    float scale_log2;
    float *lse;  /* (B*T, nh) natural-log lse, or NULL */
    float *dvec; /* backward stats: D = rowsum(dO * O) written here instead of O */
};

__device__ __forceinline__ float warp_sum(float v) {
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
    for (int off = 16; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
    return v;
}

/* Rows of sequence b's cache slot start here (element offset of row 0). */
__device__ __forceinline__ int64_t cache_row(const Params &p, int b, int pos) {
    return ((int64_t)p.slot[b] * p.max_seq + pos);
}

/* ---- tensor-core wrappers (sm_80+): layouts per the PTX ISA, "Matrix
 * Fragments for mma.m16n8k16 with floating point type" and ldmatrix ---- */

/* Four 8x8 b16 matrices; lanes 8i..8i+7 give the row addresses of matrix i,
 * and lane l receives row l/4, columns 2(l%4), 2(l%4)+1 of each (transposed
 * with .trans). */
__device__ __forceinline__ void ldmatrix_x4(uint32_t r[4], const void *smem) {
    uint32_t a = (uint32_t)__cvta_generic_to_shared(smem);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t r[4], const void *smem) {
    uint32_t a = (uint32_t)__cvta_generic_to_shared(smem);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
}

/* c (16x8 fp32) += a (16x16 bf16, row) * b (16x8 bf16, col). */
__device__ __forceinline__ void mma_bf16(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* Two floats as bf16x2, the first in the low half (the lower column index). */
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&v);
}

/* ---- host side ---- */

static inline const char *dtype_name(srlm_dtype t) { return srlm_dtype_name(t); }

/* Checks one (rows x cols) view of the expected dtype. */
static inline srlm_status check_view(const char *op, const char *name, const srlm_view *v,
                                     srlm_dtype dt, int64_t rows, int64_t cols, int rows_multiple) {
    if (!v || !v->data) return SRLM_ERR(SRLM_BAD_INPUT, "%s: %s is missing (NULL view or data)", op, name);
    if (v->dtype != dt)
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: %s is %s but q is %s (all views must share one dtype)", op,
                        name, dtype_name(v->dtype), dtype_name(dt));
    if (v->cols != cols)
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: %s has %lld columns, expected %lld (heads x head_dim)", op,
                        name, (long long)v->cols, (long long)cols);
    if (rows_multiple ? (v->rows < rows || v->rows % rows != 0) : v->rows != rows)
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: %s has %lld rows, expected %s%lld", op, name,
                        (long long)v->rows, rows_multiple ? "a multiple of max_seq = " : "",
                        (long long)rows);
    if (v->stride < v->cols)
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: %s has stride %lld < %lld columns", op, name,
                        (long long)v->stride, (long long)v->cols);
    return SRLM_OK;
}

/* The shape and the views every entry point shares: out/q (B*T, nh*hd), caches
 * (slots*max_seq, nkv*hd), one dtype, F32 or BF16. */
static inline srlm_status check_args(const char *op, const srlm_view *out, const char *out_name,
                                     const srlm_view *q, const srlm_view *k, const srlm_view *v,
                                     const srlm_cuda_attn_shape *s) {
    if (!s) return SRLM_ERR(SRLM_BAD_INPUT, "%s: shape is NULL", op);
    if (s->B < 0 || s->T < 0)
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: B = %d and T = %d must be >= 0", op, s->B, s->T);
    if (s->head_dim < 1 || s->head_dim > kMaxHeadDim)
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: head_dim %d is not supported (expected 1 .. %d)", op,
                        s->head_dim, kMaxHeadDim);
    if (s->n_heads < 1 || s->n_kv_heads < 1 || s->n_heads % s->n_kv_heads != 0)
        return SRLM_ERR(SRLM_BAD_INPUT,
                        "%s: n_heads %d must be a positive multiple of n_kv_heads %d (GQA groups)", op,
                        s->n_heads, s->n_kv_heads);
    if (s->max_seq < 1 || s->max_len < 0 || s->max_len > s->max_seq)
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: max_len %d must be within 0 .. max_seq %d", op, s->max_len,
                        s->max_seq);
    if (s->B > 0 && (!s->slot || !s->n_past || !s->n_new))
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: slot, n_past and n_new must be device arrays of B = %d", op,
                        s->B);
    if (!q) return SRLM_ERR(SRLM_BAD_INPUT, "%s: q is missing", op);
    const srlm_dtype dt = q->dtype;
    if (dt != SRLM_F32 && dt != SRLM_BF16)
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: dtype %s is not supported (expected F32 or BF16)", op,
                        dtype_name(dt));
    const int64_t rows = (int64_t)s->B * s->T;
    const int64_t qcols = (int64_t)s->n_heads * s->head_dim, kvcols = (int64_t)s->n_kv_heads * s->head_dim;
    SRLM_CHECK(check_view(op, "q", q, dt, rows, qcols, 0));
    SRLM_CHECK(check_view(op, out_name, out, dt, rows, qcols, 0));
    SRLM_CHECK(check_view(op, "k_cache", k, dt, s->max_seq, kvcols, 1));
    SRLM_CHECK(check_view(op, "v_cache", v, dt, s->max_seq, kvcols, 1));
    return SRLM_OK;
}

static inline Params make_params(const srlm_view *out, const srlm_view *q, const srlm_view *k,
                                 const srlm_view *v, const srlm_cuda_attn_shape *s) {
    Params p;
    p.q = q->data;
    p.k = k->data;
    p.v = v->data;
    p.dout = NULL;
    p.out = out ? out->data : NULL;
    p.ldq = q->stride;
    p.ldk = k->stride;
    p.ldv = v->stride;
    p.lddo = 0;
    p.ldo = out ? out->stride : 0;
    p.B = s->B;
    p.T = s->T;
    p.nh = s->n_heads;
    p.nkv = s->n_kv_heads;
    p.hd = s->head_dim;
    p.group = s->n_heads / s->n_kv_heads;
    p.max_seq = s->max_seq;
    p.slot = s->slot;
    p.n_past = s->n_past;
    p.n_new = s->n_new;
    p.scale_log2 = kLog2e / sqrtf((float)s->head_dim);
    p.lse = NULL;
    p.dvec = NULL;
    return p;
}

static inline int aligned16(const void *ptr) { return ((uintptr_t)ptr & 15u) == 0; }

/* Smallest per-lane column count (multiple of 32 columns) that covers hd. */
static inline int lane_chunks(int hd) { return hd <= 64 ? 2 : hd <= 128 ? 4 : 8; }

/* The forward launch (attention.cu), picking the tensor-core or the scalar path.
 * The backward runs it with p.dvec set for its statistics: lse and
 * D = rowsum(dO * O) per (row, head), O itself never stored. */
srlm_status launch_fwd(const Params &p, srlm_dtype dt, cudaStream_t stream);

}  // namespace attn
