/* Small data-movement and elementwise ops on the GPU: KV-cache store, row
 * gather, copy with F32 <-> BF16 conversion, add, fill, fill of a column range
 * and dropout. Row copies use one block per row; elementwise ops one thread per
 * element of the (rows, cols) view, whose flat index i * cols + j is also the
 * dropout counter. CPU twins: cpu_kv_store, cpu_copy_rows, cpu_copy, cpu_add,
 * cpu_fill, cpu_fill_cols, cpu_dropout (src/backend/cpu/). */
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <limits.h>
#include <stdint.h>

#include "cuda_check.h"
#include "dtype_io.cuh"
#include "tensor_ops.h"

using namespace dtype_io;

namespace {

constexpr int kThreads = 256;

/* dst element from a src element, bit for bit core/dtype.h's conversions; the
 * same type is a bit copy (NaN payloads kept) */
__device__ __forceinline__ void conv(float *d, float s) { *d = s; }
__device__ __forceinline__ void conv(__nv_bfloat16 *d, __nv_bfloat16 s) { *d = s; }
__device__ __forceinline__ void conv(float *d, __nv_bfloat16 s) { *d = ld(s); }
__device__ __forceinline__ void conv(__nv_bfloat16 *d, float s) { *d = to_bf16(s); }

/* ---- core/rng.h's counter-based generator, the same arithmetic on the device
 * (srlm_mix64, srlm_rng_u64, srlm_rng_uniform): the dropout mask is the CPU's. ---- */

__device__ __forceinline__ uint64_t mix64(uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
__device__ __forceinline__ float rng_uniform(uint64_t key, uint64_t counter) {
    return (float)(mix64(key ^ mix64(counter)) >> 40) * (1.0f / 16777216.0f);
}

/* ---- kernels ---- */

/* Block = kv row b*T + t; padding rows (t >= n_new[b]) and rows that would land
 * outside the cache (a caller bug) are skipped. */
template <typename T>
__global__ void kv_store_kernel(T *cache, int64_t cs, int64_t cache_rows, const T *kv, int64_t ks,
                                int T_, int max_seq, const int *slot, const int *n_past,
                                const int *n_new, int cols) {
    const int b = blockIdx.x / T_, t = blockIdx.x - b * T_;
    if (t >= n_new[b]) return;
    const int64_t dst = (int64_t)slot[b] * max_seq + n_past[b] + t;
    if (dst < 0 || dst >= cache_rows) return;
    T *d = cache + dst * cs;
    const T *s = kv + (int64_t)blockIdx.x * ks;
    for (int j = threadIdx.x; j < cols; j += kThreads) d[j] = s[j];
}

template <typename T>
__global__ void copy_rows_kernel(T *dst, int64_t ds, const T *src, int64_t ss, int64_t src_rows,
                                 const int *idx, int cols) {
    const int r = idx[blockIdx.x];
    if (r < 0 || r >= src_rows) return; /* out of range: a caller bug, not a wild read */
    T *d = dst + (int64_t)blockIdx.x * ds;
    const T *s = src + (int64_t)r * ss;
    for (int j = threadIdx.x; j < cols; j += kThreads) d[j] = s[j];
}

template <typename Td, typename Ts>
__global__ void copy_kernel(Td *dst, int64_t ds, const Ts *src, int64_t ss, int64_t n,
                            int64_t cols) {
    const int64_t idx = (int64_t)blockIdx.x * kThreads + threadIdx.x;
    if (idx >= n) return;
    const int64_t i = idx / cols, j = idx - i * cols;
    conv(dst + i * ds + j, src[i * ss + j]);
}

/* One row, or both views contiguous: a flat range, without the 64-bit division
 * per element that finding an element's row costs (a model's weights in one
 * flat view are billions of elements). */
template <typename Td, typename Ts>
__global__ void copy_flat_kernel(Td *dst, const Ts *src, int64_t n) {
    const int64_t i = (int64_t)blockIdx.x * kThreads + threadIdx.x;
    if (i < n) conv(dst + i, src[i]);
}

template <typename T>
__global__ void add_kernel(T *y, int64_t ys, const T *x, int64_t xs, int64_t n, int64_t cols) {
    const int64_t idx = (int64_t)blockIdx.x * kThreads + threadIdx.x;
    if (idx >= n) return;
    const int64_t i = idx / cols, j = idx - i * cols;
    T *p = y + i * ys + j;
    st(p, ld(*p) + ld(x[i * xs + j]));
}

/* columns [c0, c0 + width) of every row = value (fill: c0 = 0, width = cols) */
template <typename T>
__global__ void fill_kernel(T *v, int64_t vs, int64_t c0, int64_t width, int64_t n, float value) {
    const int64_t idx = (int64_t)blockIdx.x * kThreads + threadIdx.x;
    if (idx >= n) return;
    const int64_t i = idx / width, j = c0 + (idx - i * width);
    st(v + i * vs + j, value);
}

template <typename T>
__global__ void dropout_kernel(T *x, int64_t xs, int64_t n, int64_t cols, float p, float keep_scale,
                               uint64_t key) {
    const int64_t idx = (int64_t)blockIdx.x * kThreads + threadIdx.x;
    if (idx >= n) return;
    const int64_t i = idx / cols, j = idx - i * cols;
    T *e = x + i * xs + j;
    /* the counter is the CPU's i * cols + j, which is idx */
    st(e, rng_uniform(key, (uint64_t)idx) >= p ? ld(*e) * keep_scale : 0.0f);
}

/* ---- host side ---- */

/* The elementwise kernels index in int64: a model's flat (1, n_params) views
 * of billions of elements pass (7B at tp 1: 6.7e9 columns). */
srlm_status check_view(const srlm_view *v, const char *op, const char *name) {
    if (v->dtype != SRLM_F32 && v->dtype != SRLM_BF16)
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: %s dtype %s, expected F32 or BF16", op, name,
                        srlm_dtype_name(v->dtype));
    if (v->rows < 0 || v->cols < 0 || v->stride < v->cols)
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: %s is (%lld, %lld) stride %lld, expected stride >= cols >= 0",
                        op, name, (long long)v->rows, (long long)v->cols, (long long)v->stride);
    if ((v->rows * v->cols + kThreads - 1) / kThreads > INT_MAX)
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: %s has %lld elements, expected at most %lld", op, name,
                        (long long)(v->rows * v->cols), (long long)INT_MAX * kThreads);
    return SRLM_OK;
}

/* The row kernels (kv_store, copy_rows) walk a row's columns with an int. */
srlm_status check_row_view(const srlm_view *v, const char *op, const char *name) {
    SRLM_CHECK(check_view(v, op, name));
    if (v->cols > INT_MAX)
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: %s has %lld columns, expected at most %d", op, name,
                        (long long)v->cols, INT_MAX);
    return SRLM_OK;
}

srlm_status check_same_dtype(const srlm_view *b, const srlm_view *a, const char *op, const char *bn,
                             const char *an) {
    if (b->dtype != a->dtype)
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: %s dtype %s, expected %s (the dtype of %s)", op, bn,
                        srlm_dtype_name(b->dtype), srlm_dtype_name(a->dtype), an);
    return SRLM_OK;
}

srlm_status check_same_shape(const srlm_view *b, const srlm_view *a, const char *op, const char *bn,
                             const char *an) {
    if (b->rows != a->rows || b->cols != a->cols)
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: %s is (%lld, %lld), expected (%lld, %lld) as %s", op, bn,
                        (long long)b->rows, (long long)b->cols, (long long)a->rows,
                        (long long)a->cols, an);
    return SRLM_OK;
}

unsigned blocks_for(int64_t n) { return (unsigned)((n + kThreads - 1) / kThreads); }

}  // namespace

extern "C" srlm_status srlm_cuda_kv_store(srlm_view *cache, const srlm_view *kv, int B, int T,
                                          int max_seq, const int *slot, const int *n_past,
                                          const int *n_new, void *stream) {
    SRLM_CHECK(check_row_view(cache, "kv_store", "cache"));
    SRLM_CHECK(check_row_view(kv, "kv_store", "kv"));
    SRLM_CHECK(check_same_dtype(kv, cache, "kv_store", "kv", "cache"));
    if (kv->cols != cache->cols)
        return SRLM_ERR(SRLM_BAD_INPUT, "kv_store: kv has %lld columns, expected %lld (the cache's)",
                        (long long)kv->cols, (long long)cache->cols);
    if (B < 0 || T < 0 || max_seq < 1 || (int64_t)B * T > kv->rows || (int64_t)B * T > INT_MAX)
        return SRLM_ERR(SRLM_BAD_INPUT, "kv_store: B %d, T %d, max_seq %d for kv with %lld rows, "
                        "expected B, T >= 0, B * T <= kv rows, max_seq >= 1", B, T, max_seq,
                        (long long)kv->rows);
    if (B == 0 || T == 0 || kv->cols == 0) return SRLM_OK;
    const unsigned rows = (unsigned)(B * T);
    cudaStream_t st = (cudaStream_t)stream;
    if (kv->dtype == SRLM_F32)
        kv_store_kernel<float><<<rows, kThreads, 0, st>>>(
            (float *)cache->data, cache->stride, cache->rows, (const float *)kv->data, kv->stride, T,
            max_seq, slot, n_past, n_new, (int)kv->cols);
    else
        kv_store_kernel<__nv_bfloat16><<<rows, kThreads, 0, st>>>(
            (__nv_bfloat16 *)cache->data, cache->stride, cache->rows, (const __nv_bfloat16 *)kv->data,
            kv->stride, T, max_seq, slot, n_past, n_new, (int)kv->cols);
    SRLM_CUDA_TRY(cudaGetLastError());
    return SRLM_OK;
}

extern "C" srlm_status srlm_cuda_copy_rows(srlm_view *dst, const srlm_view *src, const int *src_rows,
                                           int n, void *stream) {
    SRLM_CHECK(check_row_view(dst, "copy_rows", "dst"));
    SRLM_CHECK(check_row_view(src, "copy_rows", "src"));
    SRLM_CHECK(check_same_dtype(dst, src, "copy_rows", "dst", "src"));
    if (dst->cols != src->cols)
        return SRLM_ERR(SRLM_BAD_INPUT, "copy_rows: dst has %lld columns, expected %lld (src's)",
                        (long long)dst->cols, (long long)src->cols);
    if (n < 0 || n > dst->rows)
        return SRLM_ERR(SRLM_BAD_INPUT, "copy_rows: %d rows, expected 0 .. %lld (dst's rows)", n,
                        (long long)dst->rows);
    if (n == 0 || dst->cols == 0) return SRLM_OK;
    cudaStream_t st = (cudaStream_t)stream;
    if (dst->dtype == SRLM_F32)
        copy_rows_kernel<float><<<n, kThreads, 0, st>>>((float *)dst->data, dst->stride,
                                                        (const float *)src->data, src->stride,
                                                        src->rows, src_rows, (int)dst->cols);
    else
        copy_rows_kernel<__nv_bfloat16><<<n, kThreads, 0, st>>>(
            (__nv_bfloat16 *)dst->data, dst->stride, (const __nv_bfloat16 *)src->data, src->stride,
            src->rows, src_rows, (int)dst->cols);
    SRLM_CUDA_TRY(cudaGetLastError());
    return SRLM_OK;
}

template <typename Td, typename Ts>
static void launch_copy(srlm_view *dst, const srlm_view *src, int64_t n, cudaStream_t st) {
    if (src->rows == 1 || (dst->stride == dst->cols && src->stride == src->cols))
        copy_flat_kernel<Td, Ts><<<blocks_for(n), kThreads, 0, st>>>((Td *)dst->data, (const Ts *)src->data, n);
    else
        copy_kernel<Td, Ts><<<blocks_for(n), kThreads, 0, st>>>((Td *)dst->data, dst->stride,
                                                               (const Ts *)src->data, src->stride, n,
                                                               src->cols);
}

extern "C" srlm_status srlm_cuda_copy(srlm_view *dst, const srlm_view *src, void *stream) {
    SRLM_CHECK(check_view(dst, "copy", "dst"));
    SRLM_CHECK(check_view(src, "copy", "src"));
    SRLM_CHECK(check_same_shape(dst, src, "copy", "dst", "src"));
    const int64_t n = src->rows * src->cols;
    if (n == 0) return SRLM_OK;
    cudaStream_t st = (cudaStream_t)stream;
    const bool df = dst->dtype == SRLM_F32, sf = src->dtype == SRLM_F32;
    if (df && sf) launch_copy<float, float>(dst, src, n, st);
    else if (df) launch_copy<float, __nv_bfloat16>(dst, src, n, st);
    else if (sf) launch_copy<__nv_bfloat16, float>(dst, src, n, st);
    else launch_copy<__nv_bfloat16, __nv_bfloat16>(dst, src, n, st);
    SRLM_CUDA_TRY(cudaGetLastError());
    return SRLM_OK;
}

extern "C" srlm_status srlm_cuda_add(srlm_view *y, const srlm_view *x, void *stream) {
    SRLM_CHECK(check_view(y, "add", "y"));
    SRLM_CHECK(check_view(x, "add", "x"));
    SRLM_CHECK(check_same_dtype(x, y, "add", "x", "y"));
    SRLM_CHECK(check_same_shape(x, y, "add", "x", "y"));
    const int64_t n = y->rows * y->cols;
    if (n == 0) return SRLM_OK;
    cudaStream_t st = (cudaStream_t)stream;
    if (y->dtype == SRLM_F32)
        add_kernel<float><<<blocks_for(n), kThreads, 0, st>>>((float *)y->data, y->stride,
                                                              (const float *)x->data, x->stride, n,
                                                              y->cols);
    else
        add_kernel<__nv_bfloat16><<<blocks_for(n), kThreads, 0, st>>>(
            (__nv_bfloat16 *)y->data, y->stride, (const __nv_bfloat16 *)x->data, x->stride, n, y->cols);
    SRLM_CUDA_TRY(cudaGetLastError());
    return SRLM_OK;
}

static srlm_status fill_range(srlm_view *v, int64_t c0, float value, cudaStream_t st,
                              const char *op) {
    SRLM_CHECK(check_view(v, op, "v"));
    if (c0 < 0)
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: first column %lld, expected >= 0", op, (long long)c0);
    if (c0 >= v->cols) return SRLM_OK; /* an empty range, as in the CPU's loop */
    const int64_t width = v->cols - c0, n = v->rows * width;
    if (n == 0) return SRLM_OK;
    if (v->dtype == SRLM_F32)
        fill_kernel<float><<<blocks_for(n), kThreads, 0, st>>>((float *)v->data, v->stride, c0, width,
                                                               n, value);
    else
        fill_kernel<__nv_bfloat16><<<blocks_for(n), kThreads, 0, st>>>(
            (__nv_bfloat16 *)v->data, v->stride, c0, width, n, value);
    SRLM_CUDA_TRY(cudaGetLastError());
    return SRLM_OK;
}

extern "C" srlm_status srlm_cuda_fill_cols(srlm_view *v, int64_t c0, float value, void *stream) {
    return fill_range(v, c0, value, (cudaStream_t)stream, "fill_cols");
}

extern "C" srlm_status srlm_cuda_fill(srlm_view *v, float value, void *stream) {
    return fill_range(v, 0, value, (cudaStream_t)stream, "fill");
}

extern "C" srlm_status srlm_cuda_dropout(srlm_view *x, float p, uint64_t key, void *stream) {
    SRLM_CHECK(check_view(x, "dropout", "x"));
    if (p <= 0.0f) return SRLM_OK; /* as the CPU: nothing dropped, nothing scaled */
    const int64_t n = x->rows * x->cols;
    if (n == 0) return SRLM_OK;
    const float keep_scale = 1.0f / (1.0f - p); /* the CPU's, computed the same way */
    cudaStream_t st = (cudaStream_t)stream;
    if (x->dtype == SRLM_F32)
        dropout_kernel<float><<<blocks_for(n), kThreads, 0, st>>>((float *)x->data, x->stride, n,
                                                                  x->cols, p, keep_scale, key);
    else
        dropout_kernel<__nv_bfloat16><<<blocks_for(n), kThreads, 0, st>>>(
            (__nv_bfloat16 *)x->data, x->stride, n, x->cols, p, keep_scale, key);
    SRLM_CUDA_TRY(cudaGetLastError());
    return SRLM_OK;
}
