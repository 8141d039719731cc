/* RMSNorm on the GPU. Forward: one block per row, the sum of squares reduced
 * in a fixed tree. Backward: the same per-row pass gives dx and each row's
 * 1/rms; dw then sums over rows in two fixed-order stages (column tiles x row
 * chunks into a workspace, then the chunks in order), so gradients are
 * bit-identical from run to run without atomics. CPU twins: cpu_rmsnorm and
 * cpu_rmsnorm_backward (src/backend/cpu/); fp32 math for both dtypes. */
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>

#include "cuda_check.h"
#include "dtype_io.cuh"
#include "rmsnorm.h"

using namespace dtype_io;

namespace {

constexpr int kThreads = 256;

__global__ void rmsnorm_f32_kernel(float *y, const float *x, const float *w, int cols, float eps) {
    const float *xr = x + (size_t)blockIdx.x * cols;
    float *yr = y + (size_t)blockIdx.x * cols;
    float ss = 0.0f;
    for (int j = threadIdx.x; j < cols; j += kThreads) ss += xr[j] * xr[j];
    /* warp shuffle, then one value per warp through shared memory: a fixed tree */
    for (int off = 16; off > 0; off >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, off);
    __shared__ float warp_sums[kThreads / 32];
    if ((threadIdx.x & 31) == 0) warp_sums[threadIdx.x >> 5] = ss;
    __syncthreads();
    if (threadIdx.x < 32) {
        ss = threadIdx.x < kThreads / 32 ? warp_sums[threadIdx.x] : 0.0f;
        for (int off = 16; off > 0; off >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, off);
        if (threadIdx.x == 0) warp_sums[0] = ss;
    }
    __syncthreads();
    const float inv = rsqrtf(warp_sums[0] / (float)cols + eps);
    for (int j = threadIdx.x; j < cols; j += kThreads) yr[j] = w[j] * (xr[j] * inv);
}

constexpr int kWarps = kThreads / 32;

/* Sums of a and b over the block, the same fixed tree as rmsnorm_f32_kernel;
 * every thread gets the same bits. `sh` holds 2 * kWarps floats. */
__device__ __forceinline__ void block_sum2(float &a, float &b, float *sh) {
    for (int off = 16; off > 0; off >>= 1) {
        a += __shfl_xor_sync(0xffffffffu, a, off);
        b += __shfl_xor_sync(0xffffffffu, b, off);
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) { sh[warp] = a; sh[kWarps + warp] = b; }
    __syncthreads();
    /* every warp reduces the kWarps partials the same way: no second broadcast */
    a = lane < kWarps ? sh[lane] : 0.0f;
    b = lane < kWarps ? sh[kWarps + lane] : 0.0f;
    for (int off = 16; off > 0; off >>= 1) {
        a += __shfl_xor_sync(0xffffffffu, a, off);
        b += __shfl_xor_sync(0xffffffffu, b, off);
    }
}

template <typename T>
__global__ void __launch_bounds__(kThreads) rmsnorm_kernel(T *y, int64_t ys, const T *x, int64_t xs,
                                                           const T *w, int cols, float eps) {
    const T *xr = x + (int64_t)blockIdx.x * xs;
    T *yr = y + (int64_t)blockIdx.x * ys;
    float ss = 0.0f, unused = 0.0f;
    for (int j = threadIdx.x; j < cols; j += kThreads) {
        const float v = ld(xr[j]);
        ss += v * v;
    }
    __shared__ float sh[2 * kWarps];
    block_sum2(ss, unused, sh);
    const float inv = 1.0f / sqrtf(ss / (float)cols + eps); /* as the CPU: not rsqrtf */
    for (int j = threadIdx.x; j < cols; j += kThreads) st(yr + j, ld(w[j]) * (ld(xr[j]) * inv));
}

/* x += r and y = rmsnorm(x), per row: each thread stores its x elements
 * rounded to T and reads them back (its own writes) for the sum of squares and
 * the output, so the arithmetic is add_kernel's and then rmsnorm_kernel's. */
template <typename T>
__global__ void __launch_bounds__(kThreads) add_rmsnorm_kernel(T *x, int64_t xs, T *y, int64_t ys, const T *r,
                                                               int64_t rs, const T *w, int cols, float eps) {
    T *xr = x + (int64_t)blockIdx.x * xs;
    T *yr = y + (int64_t)blockIdx.x * ys;
    const T *rr = r + (int64_t)blockIdx.x * rs;
    float ss = 0.0f, unused = 0.0f;
    for (int j = threadIdx.x; j < cols; j += kThreads) {
        st(xr + j, ld(xr[j]) + ld(rr[j]));
        const float v = ld(xr[j]);
        ss += v * v;
    }
    __shared__ float sh[2 * kWarps];
    block_sum2(ss, unused, sh);
    const float inv = 1.0f / sqrtf(ss / (float)cols + eps); /* as rmsnorm_kernel */
    for (int j = threadIdx.x; j < cols; j += kThreads) st(yr + j, ld(w[j]) * (ld(xr[j]) * inv));
}

/* Backward, per row (block = row):
 *   r = (mean(x^2) + eps)^-1/2, dot = sum_k w_k dy_k x_k, c = dot r^3 / n,
 *   dx_j = r w_j dy_j - x_j c; inv[row] = r for the dw pass. */
template <typename T>
__global__ void __launch_bounds__(kThreads)
    rmsnorm_backward_rows_kernel(T *dx, int64_t dxs, const T *dy, int64_t dys, const T *x,
                                 int64_t xs, const T *w, int cols, float eps, float *inv) {
    const T *xr = x + (int64_t)blockIdx.x * xs;
    const T *dyr = dy + (int64_t)blockIdx.x * dys;
    T *dxr = dx + (int64_t)blockIdx.x * dxs;
    float ss = 0.0f, dot = 0.0f;
    for (int j = threadIdx.x; j < cols; j += kThreads) {
        const float v = ld(xr[j]);
        ss += v * v;
        dot += ld(w[j]) * ld(dyr[j]) * v;
    }
    __shared__ float sh[2 * kWarps];
    block_sum2(ss, dot, sh);
    const float r = 1.0f / sqrtf(ss / (float)cols + eps);
    const float c = dot * r * r * r / (float)cols;
    for (int j = threadIdx.x; j < cols; j += kThreads)
        st(dxr + j, r * ld(w[j]) * ld(dyr[j]) - ld(xr[j]) * c);
    if (threadIdx.x == 0) inv[blockIdx.x] = r;
}

/* dw partials: block (column tile of 32, row chunk). Thread (tx, ty) sums rows
 * ty, ty + 8, ... of the chunk for column tile*32 + tx (a warp reads 32
 * consecutive columns of one row); the 8 row lanes are then added in order. */
constexpr int kTileCols = 32, kTileRows = 8;

template <typename T>
__global__ void __launch_bounds__(kTileCols * kTileRows)
    rmsnorm_dw_partial_kernel(float *partial, const T *dy, int64_t dys, const T *x, int64_t xs,
                              const float *inv, int rows, int cols, int rows_per_chunk) {
    const int col = blockIdx.x * kTileCols + threadIdx.x;
    const int r0 = blockIdx.y * rows_per_chunk;
    const int r1 = min(r0 + rows_per_chunk, rows);
    float acc = 0.0f;
    if (col < cols)
        for (int i = r0 + threadIdx.y; i < r1; i += kTileRows)
            acc += ld(dy[(int64_t)i * dys + col]) * ld(x[(int64_t)i * xs + col]) * inv[i];
    __shared__ float sh[kTileRows][kTileCols + 1];
    sh[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && col < cols) {
        float s = 0.0f;
        for (int k = 0; k < kTileRows; k++) s += sh[k][threadIdx.x];
        partial[(int64_t)blockIdx.y * cols + col] = s;
    }
}

/* dw[j] (+)= the chunk partials of column j, chunk 0 first (none: 0). */
template <typename T>
__global__ void rmsnorm_dw_final_kernel(T *dw, const float *partial, int n_chunks, int cols, int accumulate) {
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= cols) return;
    float s = 0.0f;
    for (int k = 0; k < n_chunks; k++) s += partial[(int64_t)k * cols + j];
    st(dw + j, accumulate ? ld(dw[j]) + s : s);
}

/* dw (+)= the n_chunks partials (0: writes zeros, or leaves dw as it is). */
srlm_status rmsnorm_dw_final(srlm_view *dw, const float *partial, int n_chunks, int cols, int accumulate,
                             cudaStream_t st) {
    if (n_chunks == 0 && accumulate) return SRLM_OK;
    const int threads = 256, blocks = (cols + threads - 1) / threads;
    if (dw->dtype == SRLM_F32)
        rmsnorm_dw_final_kernel<float><<<blocks, threads, 0, st>>>((float *)dw->data, partial, n_chunks, cols,
                                                                   accumulate);
    else
        rmsnorm_dw_final_kernel<__nv_bfloat16><<<blocks, threads, 0, st>>>((__nv_bfloat16 *)dw->data, partial,
                                                                           n_chunks, cols, accumulate);
    SRLM_CUDA_TRY(cudaGetLastError());
    return SRLM_OK;
}

/* Row chunks of the dw pass: ~32 rows each, at most 256 (bounds the workspace
 * at 256 x cols floats); a function of rows only, so the workspace size and the
 * launch agree. */
int64_t dw_chunks(int64_t rows) {
    int64_t c = (rows + 31) / 32;
    return c > 256 ? 256 : c;
}

srlm_status check_view(const srlm_view *v, const char *op, const char *name) {
    if (v->dtype != SRLM_F32 && v->dtype != SRLM_BF16)
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: %s dtype %s, expected F32 or BF16", op, name,
                        srlm_dtype_name(v->dtype));
    if (v->rows < 0 || v->rows > INT_MAX || v->cols < 1 || v->cols > INT_MAX || v->stride < v->cols)
        return SRLM_ERR(SRLM_BAD_INPUT,
                        "%s: %s is (%lld, %lld) with stride %lld, expected rows 0 .. %d, cols 1 .. %d, "
                        "stride >= cols", op, name, (long long)v->rows, (long long)v->cols,
                        (long long)v->stride, INT_MAX, INT_MAX);
    return SRLM_OK;
}

/* b must have a's dtype and shape (rows < 0: only its columns, as for w) */
srlm_status check_like(const srlm_view *b, const srlm_view *a, const char *op, const char *bn,
                       const char *an, int64_t rows) {
    SRLM_CHECK(check_view(b, op, bn));
    if (b->dtype != a->dtype)
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: %s dtype %s, expected %s (the dtype of %s)", op, bn,
                        srlm_dtype_name(b->dtype), srlm_dtype_name(a->dtype), an);
    if (b->cols != a->cols || (rows >= 0 ? b->rows != rows : b->rows < 1))
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: %s is (%lld, %lld), expected (%lld, %lld)", op, bn,
                        (long long)b->rows, (long long)b->cols, (long long)(rows >= 0 ? rows : 1),
                        (long long)a->cols);
    return SRLM_OK;
}

}  // namespace

extern "C" srlm_status srlm_cuda_rmsnorm_f32(float *y, const float *x, const float *w, int rows,
                                             int cols, float eps, void *stream) {
    if (rows == 0) return SRLM_OK;
    rmsnorm_f32_kernel<<<rows, kThreads, 0, (cudaStream_t)stream>>>(y, x, w, cols, eps);
    SRLM_CUDA_TRY(cudaGetLastError());
    return SRLM_OK;
}

extern "C" srlm_status srlm_cuda_rmsnorm(srlm_view *y, const srlm_view *x, const srlm_view *w,
                                         float eps, void *stream) {
    SRLM_CHECK(check_view(x, "rmsnorm", "x"));
    SRLM_CHECK(check_like(y, x, "rmsnorm", "y", "x", x->rows));
    SRLM_CHECK(check_like(w, x, "rmsnorm", "w", "x", -1));
    if (x->rows == 0) return SRLM_OK;
    const unsigned rows = (unsigned)x->rows;
    const int cols = (int)x->cols;
    cudaStream_t st = (cudaStream_t)stream;
    if (x->dtype == SRLM_F32)
        rmsnorm_kernel<float><<<rows, kThreads, 0, st>>>((float *)y->data, y->stride,
                                                         (const float *)x->data, x->stride,
                                                         (const float *)w->data, cols, eps);
    else
        rmsnorm_kernel<__nv_bfloat16><<<rows, kThreads, 0, st>>>(
            (__nv_bfloat16 *)y->data, y->stride, (const __nv_bfloat16 *)x->data, x->stride,
            (const __nv_bfloat16 *)w->data, cols, eps);
    SRLM_CUDA_TRY(cudaGetLastError());
    return SRLM_OK;
}

extern "C" srlm_status srlm_cuda_add_rmsnorm(srlm_view *x, srlm_view *y, const srlm_view *r, const srlm_view *w,
                                             float eps, void *stream) {
    SRLM_CHECK(check_view(x, "add_rmsnorm", "x"));
    SRLM_CHECK(check_like(y, x, "add_rmsnorm", "y", "x", x->rows));
    SRLM_CHECK(check_like(r, x, "add_rmsnorm", "r", "x", x->rows));
    SRLM_CHECK(check_like(w, x, "add_rmsnorm", "w", "x", -1));
    if (x->rows == 0) return SRLM_OK;
    const unsigned rows = (unsigned)x->rows;
    const int cols = (int)x->cols;
    cudaStream_t st = (cudaStream_t)stream;
    if (x->dtype == SRLM_F32)
        add_rmsnorm_kernel<float><<<rows, kThreads, 0, st>>>((float *)x->data, x->stride, (float *)y->data,
                                                             y->stride, (const float *)r->data, r->stride,
                                                             (const float *)w->data, cols, eps);
    else
        add_rmsnorm_kernel<__nv_bfloat16><<<rows, kThreads, 0, st>>>(
            (__nv_bfloat16 *)x->data, x->stride, (__nv_bfloat16 *)y->data, y->stride,
            (const __nv_bfloat16 *)r->data, r->stride, (const __nv_bfloat16 *)w->data, cols, eps);
    SRLM_CUDA_TRY(cudaGetLastError());
    return SRLM_OK;
}

/* Workspace: inv (rows floats), then the dw partials (chunks x cols floats). */
extern "C" size_t srlm_cuda_rmsnorm_backward_workspace(int64_t rows, int64_t cols) {
    if (rows <= 0 || cols <= 0) return 0;
    return (size_t)(rows + dw_chunks(rows) * cols) * sizeof(float);
}

template <typename T>
static srlm_status rmsnorm_backward_t(srlm_view *dx, srlm_view *dw, const srlm_view *dy,
                                      const srlm_view *x, const srlm_view *w, float eps, int accumulate,
                                      float *inv, float *partial, cudaStream_t st) {
    const int rows = (int)x->rows, cols = (int)x->cols;
    rmsnorm_backward_rows_kernel<T><<<rows, kThreads, 0, st>>>(
        (T *)dx->data, dx->stride, (const T *)dy->data, dy->stride, (const T *)x->data, x->stride,
        (const T *)w->data, cols, eps, inv);
    SRLM_CUDA_TRY(cudaGetLastError());
    const int chunks = (int)dw_chunks(rows);
    const int per_chunk = (rows + chunks - 1) / chunks;
    dim3 grid((cols + kTileCols - 1) / kTileCols, chunks), block(kTileCols, kTileRows);
    rmsnorm_dw_partial_kernel<T><<<grid, block, 0, st>>>(partial, (const T *)dy->data, dy->stride,
                                                         (const T *)x->data, x->stride, inv, rows,
                                                         cols, per_chunk);
    SRLM_CUDA_TRY(cudaGetLastError());
    return rmsnorm_dw_final(dw, partial, chunks, cols, accumulate, st);
}

extern "C" srlm_status srlm_cuda_rmsnorm_backward(srlm_view *dx, srlm_view *dw, const srlm_view *dy,
                                                  const srlm_view *x, const srlm_view *w, float eps,
                                                  int accumulate, void *workspace, void *stream) {
    const char *op = "rmsnorm_backward";
    SRLM_CHECK(check_view(x, op, "x"));
    SRLM_CHECK(check_like(dx, x, op, "dx", "x", x->rows));
    SRLM_CHECK(check_like(dy, x, op, "dy", "x", x->rows));
    SRLM_CHECK(check_like(w, x, op, "w", "x", -1));
    /* dw may be kept in another dtype than the activations (e.g. fp32 gradients) */
    SRLM_CHECK(check_view(dw, op, "dw"));
    if (dw->cols != x->cols || dw->rows < 1)
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: dw is (%lld, %lld), expected (1, %lld)", op,
                        (long long)dw->rows, (long long)dw->cols, (long long)x->cols);
    cudaStream_t st = (cudaStream_t)stream;
    if (x->rows == 0) return rmsnorm_dw_final(dw, NULL, 0, (int)x->cols, accumulate, st); /* an empty sum */
    if (!workspace)
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: no workspace, expected %zu bytes of device memory", op,
                        srlm_cuda_rmsnorm_backward_workspace(x->rows, x->cols));
    float *inv = (float *)workspace, *partial = inv + x->rows;
    if (x->dtype == SRLM_F32)
        return rmsnorm_backward_t<float>(dx, dw, dy, x, w, eps, accumulate, inv, partial, st);
    return rmsnorm_backward_t<__nv_bfloat16>(dx, dw, dy, x, w, eps, accumulate, inv, partial, st);
}
