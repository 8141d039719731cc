/* The vocab-parallel log-prob on the GPU: row max, sum of exp and target logit
 * in one pass with an online max, the in-place backward and the row argmax. One block per row; each thread walks the row with a stride of
 * the block size, using 16-byte loads over the 16-byte-aligned middle of the row
 * (any stride works: the unaligned head and the tail are read one by one). The
 * per-thread partials then meet in a fixed tree (warp shuffles, then shared
 * memory), so results are deterministic. Math in fp32 with the accurate expf,
 * like the CPU twins (cpu_row_logsumexp_target, ... in src/backend/cpu/). */
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>

#include "cuda_check.h"
#include "dtype_io.cuh"
#include "logprob.h"

using namespace dtype_io;

namespace {

constexpr int kThreads = 512; /* a 32000-wide fp32 row is ~16 16-byte loads per thread */
constexpr int kWarps = kThreads / 32;

/* A 16-byte vector (int4) holds 4 floats or 8 bf16 (little endian: element 2k is
 * the low half of word k). */
template <typename T> struct Vec;
template <> struct Vec<float> {
    static constexpr int N = 4;
    static __device__ __forceinline__ void unpack(int4 r, float *v) {
        v[0] = __int_as_float(r.x); v[1] = __int_as_float(r.y);
        v[2] = __int_as_float(r.z); v[3] = __int_as_float(r.w);
    }
    static __device__ __forceinline__ int4 pack(const float *v) {
        return make_int4(__float_as_int(v[0]), __float_as_int(v[1]), __float_as_int(v[2]),
                         __float_as_int(v[3]));
    }
};
template <> struct Vec<__nv_bfloat16> {
    static constexpr int N = 8;
    static __device__ __forceinline__ void unpack2(int w, float *v) {
        v[0] = bf16_bits_to_f32((unsigned)w);
        v[1] = __uint_as_float((unsigned)w & 0xffff0000u);
    }
    static __device__ __forceinline__ void unpack(int4 r, float *v) {
        unpack2(r.x, v); unpack2(r.y, v + 2); unpack2(r.z, v + 4); unpack2(r.w, v + 6);
    }
    static __device__ __forceinline__ int pack2(const float *v) {
        return (int)((unsigned)bf16_bits(v[0]) | ((unsigned)bf16_bits(v[1]) << 16));
    }
    static __device__ __forceinline__ int4 pack(const float *v) {
        return make_int4(pack2(v), pack2(v + 2), pack2(v + 4), pack2(v + 6));
    }
};

/* Elements before the first 16-byte boundary of the row (at most cols). */
template <typename T>
__device__ __forceinline__ int row_head(const T *row, int cols) {
    int head = (int)(((16u - ((uintptr_t)row & 15u)) & 15u) / sizeof(T));
    return head < cols ? head : cols;
}

/* Calls f(j0, v, n) for the row's values v[0..n) at columns j0.., every column
 * once, thread-strided over the block. n is 1 or Vec<T>::N (known at compile time
 * after inlining). */
template <typename T, typename F>
__device__ __forceinline__ void row_visit(const T *row, int cols, F &f) {
    constexpr int N = Vec<T>::N;
    const int head = row_head(row, cols);
    const int nvec = (cols - head) / N;
    for (int j = threadIdx.x; j < head; j += kThreads) {
        float v = ld(row[j]);
        f(j, &v, 1);
    }
    const int4 *vp = reinterpret_cast<const int4 *>(row + head);
#pragma unroll 4 /* several 16-byte loads in flight per thread */
    for (int k = threadIdx.x; k < nvec; k += kThreads) {
        float v[N];
        Vec<T>::unpack(vp[k], v);
        f(head + k * N, v, N);
    }
    for (int j = head + nvec * N + threadIdx.x; j < cols; j += kThreads) {
        float v = ld(row[j]);
        f(j, &v, 1);
    }
}

/* In place: f(j0, v, n) rewrites v, which is stored back (same walk as row_visit). */
template <typename T, typename F>
__device__ __forceinline__ void row_update(T *row, int cols, F &f) {
    constexpr int N = Vec<T>::N;
    const int head = row_head(row, cols);
    const int nvec = (cols - head) / N;
    for (int j = threadIdx.x; j < head; j += kThreads) {
        float v = ld(row[j]);
        f(j, &v, 1);
        st(row + j, v);
    }
    int4 *vp = reinterpret_cast<int4 *>(row + head);
    for (int k = threadIdx.x; k < nvec; k += kThreads) {
        float v[N];
        Vec<T>::unpack(vp[k], v);
        f(head + k * N, v, N);
        vp[k] = Vec<T>::pack(v);
    }
    for (int j = head + nvec * N + threadIdx.x; j < cols; j += kThreads) {
        float v = ld(row[j]);
        f(j, &v, 1);
        st(row + j, v);
    }
}

/* (max m, sum s of exp(x - m)) of a set of values; m = -inf, s = 0 when empty
 * (or when every value is -inf, which contributes exp(-inf) = 0). */
__device__ __forceinline__ void lse_merge(float &m, float &s, float m2, float s2) {
    const float mn = fmaxf(m, m2);
    if (mn == -INFINITY) { /* both empty; keep a NaN partial visible */
        if (isnan(s2)) s = s2;
        return;
    }
    s = s * expf(m - mn) + s2 * expf(m2 - mn); /* an empty side: 0 * exp(-inf) = 0 */
    m = mn;
}

/* (value, column) with the larger value winning and the smaller column on ties:
 * a total order, so the tree shape cannot change the answer. NaN never wins
 * (as in the CPU's `r[j] > r[best]`), except at column 0: see the kernel. */
__device__ __forceinline__ void argmax_merge(float &bv, int &bj, float v, int j) {
    if (v > bv || (v == bv && j < bj)) { bv = v; bj = j; }
}

/* ---- kernels: block b handles row b ---- */

/* The target's logit when its column is in this shard, else 0. */
template <typename T>
__device__ __forceinline__ float target_logit(const T *row, int cols, int target,
                                              int64_t vocab_start) {
    const int64_t c = (int64_t)target - vocab_start;
    return (c >= 0 && c < cols) ? ld(row[c]) : 0.0f;
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    row_logsumexp_target_kernel(const T *x, int64_t stride, int cols, const int *targets,
                                int64_t vocab_start, float *mx, float *se, float *tl) {
    const T *row = x + (int64_t)blockIdx.x * stride;
    /* online: one rescale per vector when its max raises the running max */
    struct {
        float m = -INFINITY, s = 0.0f;
        __device__ void operator()(int, const float *v, int n) {
            float vm = v[0];
            for (int k = 1; k < n; k++) vm = fmaxf(vm, v[k]);
            const float mn = fmaxf(m, vm);
            if (mn == -INFINITY) { /* all -inf (or NaN): nothing to add but a NaN */
                for (int k = 0; k < n; k++) if (isnan(v[k])) s = v[k];
                return;
            }
            if (mn > m) { s *= expf(m - mn); m = mn; } /* from -inf: s is 0, stays 0 */
            for (int k = 0; k < n; k++) s += expf(v[k] - m);
        }
    } f;
    row_visit(row, cols, f);
    /* the (m, s) pairs through a fixed tree: shuffles within a warp, then the
     * warps' results in shared memory through warp 0 (deterministic) */
    __shared__ float shm[kWarps], shs[kWarps];
    float m = f.m, s = f.s;
    for (int off = 16; off > 0; off >>= 1) {
        float m2 = __shfl_down_sync(0xffffffffu, m, off), s2 = __shfl_down_sync(0xffffffffu, s, off);
        lse_merge(m, s, m2, s2);
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) { shm[warp] = m; shs[warp] = s; }
    __syncthreads();
    if (warp == 0) {
        m = lane < kWarps ? shm[lane] : -INFINITY;
        s = lane < kWarps ? shs[lane] : 0.0f;
        for (int off = 16; off > 0; off >>= 1) {
            float m2 = __shfl_down_sync(0xffffffffu, m, off), s2 = __shfl_down_sync(0xffffffffu, s, off);
            lse_merge(m, s, m2, s2);
        }
        if (lane == 0) {
            mx[blockIdx.x] = m;
            se[blockIdx.x] = s;
            tl[blockIdx.x] = target_logit(row, cols, targets[blockIdx.x], vocab_start);
        }
    }
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    logprob_backward_kernel(T *x, int64_t stride, int cols, const float *mx, const float *se,
                            const int *targets, int64_t vocab_start, const float *dlogp) {
    T *row = x + (int64_t)blockIdx.x * stride;
    const float d = dlogp[blockIdx.x];
    if (d == 0.0f) { /* masked row: zeros, whatever the logits hold (the whole block agrees) */
        struct {
            __device__ void operator()(int, float *v, int n) {
                for (int k = 0; k < n; k++) v[k] = 0.0f;
            }
        } z;
        row_update(row, cols, z);
        return;
    }
    const int64_t c = (int64_t)targets[blockIdx.x] - vocab_start;
    struct {
        float d, m, inv;
        int c; /* -1 when the target is outside this shard */
        __device__ void operator()(int j0, float *v, int n) {
            for (int k = 0; k < n; k++) {
                /* the CPU's expression and order; _rn: no fused multiply-add
                 * (nvcc contracts by default, the CPU build does not) */
                float g = __fmul_rn(-d, __fmul_rn(expf(v[k] - m), inv));
                if (j0 + k == c) g = __fadd_rn(g, d);
                v[k] = g;
            }
        }
    } f;
    f.d = d;
    f.m = mx[blockIdx.x];
    f.inv = 1.0f / se[blockIdx.x];
    f.c = (c >= 0 && c < cols) ? (int)c : -1;
    row_update(row, cols, f);
}

template <typename T>
__global__ void __launch_bounds__(kThreads) row_argmax_kernel(const T *x, int64_t stride, int cols,
                                                              int *idx, float *val) {
    const T *row = x + (int64_t)blockIdx.x * stride;
    struct {
        float bv = -INFINITY;
        int bj = INT_MAX;
        __device__ void operator()(int j0, const float *v, int n) {
            for (int k = 0; k < n; k++) argmax_merge(bv, bj, v[k], j0 + k);
        }
    } f;
    row_visit(row, cols, f);
    float bv = f.bv;
    int bj = f.bj;
    for (int off = 16; off > 0; off >>= 1) {
        float v2 = __shfl_down_sync(0xffffffffu, bv, off);
        int j2 = __shfl_down_sync(0xffffffffu, bj, off);
        argmax_merge(bv, bj, v2, j2);
    }
    __shared__ float shv[kWarps];
    __shared__ int shj[kWarps];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) { shv[warp] = bv; shj[warp] = bj; }
    __syncthreads();
    if (warp == 0) {
        bv = lane < kWarps ? shv[lane] : -INFINITY;
        bj = lane < kWarps ? shj[lane] : INT_MAX;
        for (int off = 16; off > 0; off >>= 1) {
            float v2 = __shfl_down_sync(0xffffffffu, bv, off);
            int j2 = __shfl_down_sync(0xffffffffu, bj, off);
            argmax_merge(bv, bj, v2, j2);
        }
        if (lane == 0) {
            /* the CPU starts from column 0 and only a strictly greater value
             * replaces it: a NaN there is never replaced */
            const float v0 = ld(row[0]);
            if (isnan(v0)) { bv = v0; bj = 0; }
            idx[blockIdx.x] = bj;
            val[blockIdx.x] = bv;
        }
    }
}

/* ---- host side ---- */

srlm_status check_logits(const srlm_view *v, const char *op) {
    if (v->dtype != SRLM_F32 && v->dtype != SRLM_BF16)
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: logits dtype %s, expected F32 or BF16", op,
                        srlm_dtype_name(v->dtype));
    if (v->cols < 1 || v->cols > INT_MAX)
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: logits have %lld columns, expected 1 .. %d", op,
                        (long long)v->cols, INT_MAX);
    if (v->stride < v->cols)
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: logits stride %lld, expected >= cols %lld", op,
                        (long long)v->stride, (long long)v->cols);
    if (v->rows < 0 || v->rows > INT_MAX)
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: logits have %lld rows, expected 0 .. %d", op,
                        (long long)v->rows, INT_MAX);
    return SRLM_OK;
}

}  // namespace

#define LAUNCH_BY_DTYPE(v, kernel, stream, ...)                                              \
    do {                                                                                     \
        if ((v)->dtype == SRLM_F32)                                                          \
            kernel<float><<<(unsigned)(v)->rows, kThreads, 0, (cudaStream_t)(stream)>>>(     \
                (float *)(v)->data, (v)->stride, (int)(v)->cols, __VA_ARGS__);               \
        else                                                                                 \
            kernel<__nv_bfloat16><<<(unsigned)(v)->rows, kThreads, 0, (cudaStream_t)(stream)>>>( \
                (__nv_bfloat16 *)(v)->data, (v)->stride, (int)(v)->cols, __VA_ARGS__);       \
        SRLM_CUDA_TRY(cudaGetLastError());                                                   \
    } while (0)

extern "C" srlm_status srlm_cuda_row_logsumexp_target(const srlm_view *logits, const int *targets,
                                                      int64_t vocab_start, float *mx, float *se,
                                                      float *tl, void *stream) {
    SRLM_CHECK(check_logits(logits, "row_logsumexp_target"));
    if (logits->rows == 0) return SRLM_OK;
    LAUNCH_BY_DTYPE(logits, row_logsumexp_target_kernel, stream, targets, vocab_start, mx, se, tl);
    return SRLM_OK;
}

extern "C" srlm_status srlm_cuda_logprob_backward(srlm_view *logits, const float *mx,
                                                  const float *se, const int *targets,
                                                  int64_t vocab_start, const float *dlogp,
                                                  void *stream) {
    SRLM_CHECK(check_logits(logits, "logprob_backward"));
    if (logits->rows == 0) return SRLM_OK;
    LAUNCH_BY_DTYPE(logits, logprob_backward_kernel, stream, mx, se, targets, vocab_start, dlogp);
    return SRLM_OK;
}

extern "C" srlm_status srlm_cuda_row_argmax(const srlm_view *logits, int *idx, float *val,
                                            void *stream) {
    SRLM_CHECK(check_logits(logits, "row_argmax"));
    if (logits->rows == 0) return SRLM_OK;
    LAUNCH_BY_DTYPE(logits, row_argmax_kernel, stream, idx, val);
    return SRLM_OK;
}
