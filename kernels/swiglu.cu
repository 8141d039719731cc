/* The SiLU-gated MLP activation on the GPU, forward and backward: elementwise,
 * one thread per element of the (rows, cols) views (each with its own stride).
 * The expressions are the CPU twins' (cpu_swiglu, cpu_swiglu_backward), with
 * the accurate expf and IEEE division. */
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>

#include "cuda_check.h"
#include "dtype_io.cuh"
#include "swiglu.h"

using namespace dtype_io;

namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void swiglu_kernel(T *out, int64_t os, const T *gate, int64_t gs, const T *up, int64_t us,
                              int64_t n, int64_t cols) {
    const int64_t idx = (int64_t)blockIdx.x * kThreads + threadIdx.x;
    if (idx >= n) return;
    const int64_t i = idx / cols, j = idx - i * cols;
    const float g = ld(gate[i * gs + j]), u = ld(up[i * us + j]);
    st(out + i * os + j, g / (1.0f + expf(-g)) * u);
}

template <typename T>
__global__ void swiglu_backward_kernel(T *dgate, int64_t dgs, T *dup, int64_t dus, const T *dout,
                                       int64_t ds, const T *gate, int64_t gs, const T *up,
                                       int64_t us, int64_t n, int64_t cols) {
    const int64_t idx = (int64_t)blockIdx.x * kThreads + threadIdx.x;
    if (idx >= n) return;
    const int64_t i = idx / cols, j = idx - i * cols;
    const float g = ld(gate[i * gs + j]), u = ld(up[i * us + j]), d = ld(dout[i * ds + j]);
    const float sig = 1.0f / (1.0f + expf(-g));
    const float silu = g * sig;
    st(dup + i * dus + j, d * silu);
    st(dgate + i * dgs + j, d * u * sig * (1.0f + g * (1.0f - sig)));
}

/* v must be (rows, cols) of dtype t with stride >= cols. */
srlm_status check(const srlm_view *v, const char *op, const char *name, srlm_dtype t, int64_t rows,
                  int64_t cols) {
    if (v->dtype != t)
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: %s dtype %s, expected %s", op, name,
                        srlm_dtype_name(v->dtype), srlm_dtype_name(t));
    if (v->rows != rows || v->cols != cols || v->stride < v->cols)
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: %s is (%lld, %lld) stride %lld, expected (%lld, %lld) "
                        "stride >= cols", op, name, (long long)v->rows, (long long)v->cols,
                        (long long)v->stride, (long long)rows, (long long)cols);
    return SRLM_OK;
}

srlm_status check_first(const srlm_view *v, const char *op, const char *name) {
    if (v->dtype != SRLM_F32 && v->dtype != SRLM_BF16)
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: %s dtype %s, expected F32 or BF16", op, name,
                        srlm_dtype_name(v->dtype));
    if (v->rows < 0 || v->cols < 0)
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: %s is (%lld, %lld), expected a non-negative shape", op,
                        name, (long long)v->rows, (long long)v->cols);
    if ((v->rows * v->cols + kThreads - 1) / kThreads > INT_MAX)
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: %s has %lld elements, expected at most %lld", op, name,
                        (long long)(v->rows * v->cols), (long long)INT_MAX * kThreads);
    return SRLM_OK;
}

}  // namespace

extern "C" srlm_status srlm_cuda_swiglu(srlm_view *out, const srlm_view *gate, const srlm_view *up,
                                        void *stream) {
    SRLM_CHECK(check_first(out, "swiglu", "out"));
    SRLM_CHECK(check(out, "swiglu", "out", out->dtype, out->rows, out->cols));
    SRLM_CHECK(check(gate, "swiglu", "gate", out->dtype, out->rows, out->cols));
    SRLM_CHECK(check(up, "swiglu", "up", out->dtype, out->rows, out->cols));
    const int64_t n = out->rows * out->cols;
    if (n == 0) return SRLM_OK;
    const unsigned blocks = (unsigned)((n + kThreads - 1) / kThreads);
    cudaStream_t st = (cudaStream_t)stream;
    if (out->dtype == SRLM_F32)
        swiglu_kernel<float><<<blocks, kThreads, 0, st>>>(
            (float *)out->data, out->stride, (const float *)gate->data, gate->stride,
            (const float *)up->data, up->stride, n, out->cols);
    else
        swiglu_kernel<__nv_bfloat16><<<blocks, kThreads, 0, st>>>(
            (__nv_bfloat16 *)out->data, out->stride, (const __nv_bfloat16 *)gate->data, gate->stride,
            (const __nv_bfloat16 *)up->data, up->stride, n, out->cols);
    SRLM_CUDA_TRY(cudaGetLastError());
    return SRLM_OK;
}

extern "C" srlm_status srlm_cuda_swiglu_backward(srlm_view *dgate, srlm_view *dup,
                                                 const srlm_view *dout, const srlm_view *gate,
                                                 const srlm_view *up, void *stream) {
    const char *op = "swiglu_backward";
    SRLM_CHECK(check_first(dout, op, "dout"));
    const srlm_dtype t = dout->dtype;
    const int64_t rows = dout->rows, cols = dout->cols;
    SRLM_CHECK(check(dout, op, "dout", t, rows, cols));
    SRLM_CHECK(check(dgate, op, "dgate", t, rows, cols));
    SRLM_CHECK(check(dup, op, "dup", t, rows, cols));
    SRLM_CHECK(check(gate, op, "gate", t, rows, cols));
    SRLM_CHECK(check(up, op, "up", t, rows, cols));
    const int64_t n = rows * cols;
    if (n == 0) return SRLM_OK;
    const unsigned blocks = (unsigned)((n + kThreads - 1) / kThreads);
    cudaStream_t st = (cudaStream_t)stream;
    if (t == SRLM_F32)
        swiglu_backward_kernel<float><<<blocks, kThreads, 0, st>>>(
            (float *)dgate->data, dgate->stride, (float *)dup->data, dup->stride,
            (const float *)dout->data, dout->stride, (const float *)gate->data, gate->stride,
            (const float *)up->data, up->stride, n, cols);
    else
        swiglu_backward_kernel<__nv_bfloat16><<<blocks, kThreads, 0, st>>>(
            (__nv_bfloat16 *)dgate->data, dgate->stride, (__nv_bfloat16 *)dup->data, dup->stride,
            (const __nv_bfloat16 *)dout->data, dout->stride, (const __nv_bfloat16 *)gate->data,
            gate->stride, (const __nv_bfloat16 *)up->data, up->stride, n, cols);
    SRLM_CUDA_TRY(cudaGetLastError());
    return SRLM_OK;
}
