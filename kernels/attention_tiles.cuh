/* Private helpers shared by attention.cu, attention_bwd.cu, attention_bwd_mma.cu
 * and attention_decode.cu: the kernel parameter block, warp reductions, the
 * mma/ldmatrix wrappers, the bf16 tiles of the tensor-core kernels (cp.async
 * copies into padded shared-memory rows, the two warp-level products) and the
 * host-side argument checks (element loads and stores by dtype: dtype_io.cuh). */
#pragma once

#include <atomic>

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

/* An attribute of the current device, read once per device (fallback where it
 * cannot be read). Threads that race to read it store the same value; the
 * atomics make that race defined. */
template <cudaDeviceAttr A> inline int device_attr(int fallback) {
    static std::atomic<int> cached[64];
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || dev < 0 || dev >= 64) {
        cudaGetLastError();
        return fallback;
    }
    int v = cached[dev].load(std::memory_order_relaxed);
    if (v == 0) {
        if (cudaDeviceGetAttribute(&v, A, dev) != cudaSuccess || v <= 0) {
            cudaGetLastError();
            v = fallback;
        }
        cached[dev].store(v, std::memory_order_relaxed);
    }
    return v;
}

/* Dynamic shared memory a block may opt in to: 227 KB on an H100, 163 KB on
 * an A100, but 99 KB on sm_86/sm_89 parts (A10, A40, L4, L40S, RTX 30/40),
 * where the tensor-core kernels' larger tiles do not fit and the scalar
 * kernels run instead. */
inline size_t smem_optin() {
    return (size_t)device_attr<cudaDevAttrMaxSharedMemoryPerBlockOptin>((int)kDefaultSmem);
}

/* Everything a kernel needs, passed by value. Scores live in the log2 domain:
 * s2 = q.k * scale * log2(e), so softmax weights are exp2(s2 - max). */
struct Params {
    const void *q, *k, *v, *dout;
    void *out;
    int64_t ldq, ldk, ldv, lddo, ldo; /* row strides in elements */
    int B, T, nh, nkv, hd, group, max_seq;
    const int *slot, *n_past, *n_new; /* device arrays (B) */
    const int *seg_lo, *seg_hi;       /* packed sequences' per-row bounds (T), or NULL */
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

/* 2^x by the special-function unit with subnormal results flushed to zero
 * (exp2f adds a rescaling around it for subnormals): softmax weights below
 * 2^-126 of the row max are dropped, far under bf16's resolution. */
__device__ __forceinline__ float exp2_ftz(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

/* The first key row t of sequence b sees: 0, or its packed sequence's
 * first row (seg_lo only comes with B == 1 and n_past 0). */
__device__ __forceinline__ int key_lo(const Params &p, int t) { return p.seg_lo ? p.seg_lo[t] : 0; }

/* One past the last query row that sees key j (of n_new rows): n_new, or
 * the end of key j's packed sequence. */
__device__ __forceinline__ int row_hi(const Params &p, int j, int n_new) {
    return p.seg_hi ? min(n_new, p.seg_hi[j]) : n_new;
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

/* ---- tiles of bf16 head rows in shared memory (the tensor-core kernels of
 * attention.cu and attention_bwd_mma.cu) ---- */

/* Smem rows padded by 8 bf16 (16 bytes): the 8 row addresses of one ldmatrix
 * land in 8 different 16-byte bank groups (row stride 9 or 17 x 16 bytes). */
template <int HD> __host__ __device__ constexpr int lds() { return HD + 8; }

/* Copies `rows` rows of HD bf16 (row r at src + r * ld) into smem with
 * cp.async, 16 bytes per copy; rows >= valid are zeroed with plain stores
 * (cache rows past the end may hold anything, NaN included, and 0 * NaN would
 * poison the mma). Both are ordered by the caller's wait + __syncthreads. */
template <int HD>
__device__ __forceinline__ void load_async(__nv_bfloat16 *dst, const __nv_bfloat16 *src, int64_t ld, int rows,
                                           int valid) {
    constexpr int kVec = HD / 8;
    for (int i = threadIdx.x; i < rows * kVec; i += blockDim.x) {
        const int r = i / kVec, c = (i % kVec) * 8;
        __nv_bfloat16 *d = dst + r * lds<HD>() + c;
        if (r < valid) {
            const uint32_t a = (uint32_t)__cvta_generic_to_shared(d);
            asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(a),
                         "l"(__cvta_generic_to_global(src + r * ld + c)));
        } else {
            *reinterpret_cast<uint4 *>(d) = make_uint4(0, 0, 0, 0);
        }
    }
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
/* waits until at most one group (the tile issued last) is still in flight */
__device__ __forceinline__ void cp_async_wait_one() { asm volatile("cp.async.wait_group 1;\n" ::); }
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::); }

/* c (16 x N per m-tile) = A B^T for each of this warp's MT m-tiles: A is
 * 16 * MT rows of HD (smem, row-major; m-tile mt at rows 16 mt..), B is N
 * rows of HD (smem, row-major), so both are read by plain ldmatrix, and each
 * B fragment feeds all MT tiles.
 * A fragment: lanes 0-15 address rows 0-15 at column kc*16, lanes 16-31 the
 * same rows at kc*16 + 8 (registers a0a1, a2a3, a4a5, a6a7).
 * B fragments of two n-tiles per ldmatrix.x4: lanes 0-7 rows +0..7 at d, 8-15
 * rows +0..7 at d+8, 16-23 rows +8..15 at d, 24-31 rows +8..15 at d+8.
 * Accumulator element e of n-tile nt: row g (e < 2) or g + 8, column
 * nt*8 + 2*tig + (e & 1), with g = lane / 4, tig = lane % 4. */
template <int HD, int N, int MT>
__device__ __forceinline__ void mma_abt_tiles(float (&c)[MT][N / 8][4], const __nv_bfloat16 *a,
                                              const __nv_bfloat16 *b) {
    constexpr int LDS = lds<HD>();
    const int lane = threadIdx.x % 32;
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int i = 0; i < N / 8; i++) c[mt][i][0] = c[mt][i][1] = c[mt][i][2] = c[mt][i][3] = 0.0f;
#pragma unroll
    for (int kc = 0; kc < HD / 16; kc++) {
        uint32_t af[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; mt++) ldmatrix_x4(af[mt], a + (mt * 16 + lane % 16) * LDS + kc * 16 + (lane / 16) * 8);
#pragma unroll
        for (int np = 0; np < N / 16; np++) {
            uint32_t bf[4];
            ldmatrix_x4(bf, b + (np * 16 + lane % 8 + (lane / 16) * 8) * LDS + kc * 16 + ((lane / 8) % 2) * 8);
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                mma_bf16(c[mt][2 * np], af[mt], bf[0], bf[1]);
                mma_bf16(c[mt][2 * np + 1], af[mt], bf[2], bf[3]);
            }
        }
    }
}

/* mma_abt_tiles for a warp with one m-tile. */
template <int HD, int N>
__device__ __forceinline__ void mma_abt(float (&c)[N / 8][4], const __nv_bfloat16 *a, const __nv_bfloat16 *b) {
    mma_abt_tiles<HD, N, 1>(reinterpret_cast<float(&)[1][N / 8][4]>(c), a, b);
}

/* acc (16 x HD) += X B for each of this warp's MT m-tiles: X (16 x K per
 * tile) sits in accumulator layout (mma_abt's c) and is re-packed to bf16 A
 * fragments: k-chunk kc is n-tiles 2kc (a0..a3) and 2kc+1 (a4..a7). B is K
 * rows of HD (smem, row-major), read by ldmatrix.trans once per k-chunk and
 * d-pair for all MT tiles: lanes 0-7 rows +0..7 at d, 8-15 rows +8..15 at d,
 * 16-23 rows +0..7 at d+8, 24-31 rows +8..15 at d+8 -> (b0, b1) of d-tiles
 * 2dp and 2dp+1. */
template <int HD, int K, int MT>
__device__ __forceinline__ void mma_ab_tiles(float (&acc)[MT][HD / 8][4], const float (&x)[MT][K / 8][4],
                                             const __nv_bfloat16 *b) {
    constexpr int LDS = lds<HD>();
    const int lane = threadIdx.x % 32;
#pragma unroll
    for (int kc = 0; kc < K / 16; kc++) {
        uint32_t xa[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; mt++) {
            xa[mt][0] = pack_bf16(x[mt][2 * kc][0], x[mt][2 * kc][1]);
            xa[mt][1] = pack_bf16(x[mt][2 * kc][2], x[mt][2 * kc][3]);
            xa[mt][2] = pack_bf16(x[mt][2 * kc + 1][0], x[mt][2 * kc + 1][1]);
            xa[mt][3] = pack_bf16(x[mt][2 * kc + 1][2], x[mt][2 * kc + 1][3]);
        }
#pragma unroll
        for (int dp = 0; dp < HD / 16; dp++) {
            uint32_t bf[4];
            ldmatrix_x4_trans(bf, b + (kc * 16 + lane % 8 + ((lane / 8) % 2) * 8) * LDS + dp * 16 + (lane / 16) * 8);
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                mma_bf16(acc[mt][2 * dp], xa[mt], bf[0], bf[1]);
                mma_bf16(acc[mt][2 * dp + 1], xa[mt], bf[2], bf[3]);
            }
        }
    }
}

/* mma_ab_tiles for a warp with one m-tile (the backward kernels). */
template <int HD, int K>
__device__ __forceinline__ void mma_ab(float (&acc)[HD / 8][4], const float (&x)[K / 8][4], const __nv_bfloat16 *b) {
    mma_ab_tiles<HD, K, 1>(reinterpret_cast<float(&)[1][HD / 8][4]>(acc),
                           reinterpret_cast<const float(&)[1][K / 8][4]>(x), b);
}

/* ---- the forward kernels' online softmax (attention.cu, attention_sm90.cu) ---- */

/* softmax_step's first half: the scores become the tile's weights, m and l
 * move to the new running max, and alpha[r] (the factor that moves row r's
 * output to it) is left for the caller, who applies it (rescale_rows) when
 * the output accumulators are its to touch: at once (softmax_step), or after
 * a product still adding to them has landed (the wgmma forward that overlaps
 * the next scores with the last weights' product). */
template <int BK>
__device__ __forceinline__ void softmax_scores(float (&s)[BK / 8][4], float (&m)[2], float (&l)[2],
                                               float (&alpha)[2], const int (&lim)[2], const int (&lo)[2],
                                               int k0, bool masked, float scale_log2) {
    const int tig = threadIdx.x % 4;
    if (masked) {
#pragma unroll
        for (int nt = 0; nt < BK / 8; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int key = k0 + nt * 8 + 2 * tig + (e & 1);
                if (key >= lim[e / 2] || key < lo[e / 2]) s[nt][e] = -INFINITY;
            }
    }
    float tmax[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int nt = 0; nt < BK / 8; nt++)
#pragma unroll
        for (int e = 0; e < 4; e++) tmax[e / 2] = fmaxf(tmax[e / 2], s[nt][e]);
    float neg_m[2]; /* minus the running max used for this tile's weights */
#pragma unroll
    for (int r = 0; r < 2; r++) {
        tmax[r] = fmaxf(tmax[r], __shfl_xor_sync(0xffffffffu, tmax[r], 1));
        tmax[r] = fmaxf(tmax[r], __shfl_xor_sync(0xffffffffu, tmax[r], 2));
        const float m_new = fmaxf(m[r], tmax[r] * scale_log2);
        neg_m[r] = m_new == -INFINITY ? 0.0f : -m_new; /* no key seen yet: avoid inf - inf */
        alpha[r] = exp2_ftz(m[r] + neg_m[r]);
        m[r] = m_new;
        l[r] *= alpha[r];
    }
#pragma unroll
    for (int nt = 0; nt < BK / 8; nt++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            s[nt][e] = exp2_ftz(fmaf(s[nt][e], scale_log2, neg_m[e / 2]));
            l[e / 2] += s[nt][e];
        }
}

/* The output rows to the new running max. Past the first tiles a row's max
 * rarely moves: when no row of the warp's tile moved, alpha is exactly 1 and
 * the HD/2 multiplies per lane are skipped. */
template <int HD>
__device__ __forceinline__ void rescale_rows(float (&o)[HD / 8][4], const float (&alpha)[2]) {
    if (__any_sync(0xffffffffu, alpha[0] != 1.0f || alpha[1] != 1.0f)) {
#pragma unroll
        for (int i = 0; i < HD / 8; i++) {
            o[i][0] *= alpha[0];
            o[i][1] *= alpha[0];
            o[i][2] *= alpha[1];
            o[i][3] *= alpha[1];
        }
    }
}

/* One key tile's online-softmax step for one m-tile: s (16 x BK raw
 * scores q.k in the mma accumulator layout; a row's values sit on the 4 lanes of one
 * lane quad) becomes P = exp2(s * scale_log2 - m) in place (one FFMA and one
 * ex2 per score: m is kept in the scaled log2 domain, and the max of raw
 * scores scales to the max of scaled ones as scale_log2 > 0); m, l and the
 * output rows o are rescaled to the new running max. Accumulator element e
 * of n-tile nt is row (e < 2 ? g : g+8), key k0 + nt*8 + 2*tig + (e & 1);
 * keys >= lim or < lo of their row are masked, which only tiles on the
 * causal diagonal (or, with packed sequences, on a sequence's start) need. */
template <int HD, int BK>
__device__ __forceinline__ void softmax_step(float (&s)[BK / 8][4], float (&m)[2], float (&l)[2],
                                             float (&o)[HD / 8][4], const int (&lim)[2], const int (&lo)[2],
                                             int k0, bool masked, float scale_log2) {
    float alpha[2];
    softmax_scores<BK>(s, m, l, alpha, lim, lo, k0, masked, scale_log2);
    rescale_rows<HD>(o, alpha);
}

/* The tensor-core forwards' last step for one warp's 16 rows from w0 (this
 * lane's rows w0 + g and w0 + g + 8; o, m, l in the mma accumulator layout):
 * the row sums over the lane quad, then the output rows (zeros for padding
 * rows, none past T), or in statistics mode D = rowsum(dO O) instead, and
 * the natural-log lse where asked for. */
template <int HD>
__device__ __forceinline__ void store_fwd_rows(const Params &p, int b, int h, int w0, int n_new,
                                               const float (&o)[HD / 8][4], const float (&m)[2],
                                               const float (&l)[2]) {
    const int tig = threadIdx.x % 4, g = (threadIdx.x % 32) / 4;
    const __nv_bfloat16 *dout = (const __nv_bfloat16 *)p.dout;
    __nv_bfloat16 *out = (__nv_bfloat16 *)p.out;
#pragma unroll
    for (int r = 0; r < 2; r++) {
        float lr = l[r];
        lr += __shfl_xor_sync(0xffffffffu, lr, 1);
        lr += __shfl_xor_sync(0xffffffffu, lr, 2);
        const int t = w0 + g + 8 * r;
        const bool real = t < n_new;
        const float inv = lr > 0.0f ? 1.0f / lr : 0.0f;
        const int64_t row = (int64_t)b * p.T + t;
        float dsum = 0.0f;
#pragma unroll
        for (int nt = 0; nt < HD / 8; nt++) {
            const int col = h * HD + nt * 8 + 2 * tig;
            const float x0 = real ? o[nt][2 * r] * inv : 0.0f, x1 = real ? o[nt][2 * r + 1] * inv : 0.0f;
            if (t >= p.T) continue;
            if (p.dvec) {
                if (!real) continue; /* D = 0 there: a padding row's dO may be anything, NaN included */
                const __nv_bfloat16 *dr = dout + row * p.lddo + col;
                dsum += x0 * ld(dr[0]) + x1 * ld(dr[1]);
            } else {
                *reinterpret_cast<__nv_bfloat162 *>(out + row * p.ldo + col) = __floats2bfloat162_rn(x0, x1);
            }
        }
        if (p.dvec) {
            dsum += __shfl_xor_sync(0xffffffffu, dsum, 1);
            dsum += __shfl_xor_sync(0xffffffffu, dsum, 2);
        }
        if (tig == 0 && t < p.T) {
            if (p.lse) p.lse[row * p.nh + h] = real ? (m[r] + log2f(lr)) * kLn2 : 0.0f;
            if (p.dvec) p.dvec[row * p.nh + h] = dsum;
        }
    }
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
    if ((s->seg_lo || s->seg_hi) && (!s->seg_lo || !s->seg_hi || s->B != 1))
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: packed sequences need both seg_lo and seg_hi and B == 1 (got "
                        "seg_lo %s, seg_hi %s, B %d)", op, s->seg_lo ? "set" : "NULL", s->seg_hi ? "set" : "NULL",
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
    p.seg_lo = s->seg_lo;
    p.seg_hi = s->seg_hi;
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

/* The Hopper kernels (attention_sm90.cu, attention_bwd_sm90.cu, built for
 * sm_90a only): whether they take bf16 work of this head_dim on the current
 * device (64 or 128, a compute capability 9.0 device where the sm_90a image
 * loaded, not turned off by srlm_cuda_attention_force_path or
 * SRLM_CUDA_ATTN_SM90=0), and the forward's launch, under the same alignment
 * as the mma kernel's. */
bool use_sm90(int hd);
srlm_status launch_fwd_sm90(const Params &p, cudaStream_t stream);

}  // namespace attn
