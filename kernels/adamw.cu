/* AdamW with fp32 master weights, the deterministic sum of squares and the
 * clipping scale, on the GPU. CPU twins in src/train/optimizer.c.
 *
 * Bit-identity with the CPU twin: nvcc contracts a*b + c into one FMA by
 * default, and the CPU (gcc, ISO C, -ffp-contract=off) does not. So every
 * float operation below is written as an explicit round-to-nearest intrinsic
 * (__fmul_rn, __fadd_rn, __fsub_rn, __fdiv_rn, __fsqrt_rn, __fmaf_rn): the
 * compiler never contracts or reorders those, whatever --fmad or
 * --use_fast_math says, and the two fmaf of the CPU twin are __fmaf_rn here. */
#include <cuda_runtime.h>
#include <stdint.h>

#include "adamw.h"
#include "cuda_check.h"
#include "dtype_io.cuh"

using namespace dtype_io;

namespace {

constexpr int kThreads = 256;
/* Sum of squares: each block of the first kernel sums a fixed chunk of
 * kThreads * kPerThread values, so the partition depends on n alone. */
constexpr int kPerThread = 32;
constexpr size_t kChunk = (size_t)kThreads * kPerThread;
constexpr int kFinalThreads = 1024;

/* param_kind: 0 = no working copy, 1 = fp32, 2 = bf16. */
__global__ void adamw_kernel(float *__restrict__ master, const float *__restrict__ grad,
                             float *__restrict__ m, float *__restrict__ v, size_t n,
                             srlm_cuda_adamw_args a, void *param, int param_kind) {
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const float g = grad[i], m0 = m[i], v0 = v[i];
        /* decay: one_minus_lr_wd is 1 when off, and p * 1 == p */
        float p = __fmul_rn(master[i], a.one_minus_lr_wd);
        const float mi = __fmaf_rn(a.one_minus_beta1, __fsub_rn(g, m0), m0);
        const float vi = __fmaf_rn(__fmul_rn(a.one_minus_beta2, g), g, __fmul_rn(v0, a.beta2));
        const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), a.sqrt_bc2), a.eps);
        p = __fadd_rn(p, __fdiv_rn(__fmul_rn(a.neg_step_size, mi), denom));
        master[i] = p;
        m[i] = mi;
        v[i] = vi;
        if (param_kind == 1) ((float *)param)[i] = p;
        else if (param_kind == 2) ((uint16_t *)param)[i] = bf16_bits(p); /* srlm_f32_to_bf16's bits */
    }
}

/* Fixed tree over a block's doubles: shuffles in each warp, then warp 0 over
 * the warp sums. Thread 0 returns the total (the others a partial). */
template <int Threads>
__device__ double block_sum_f64(double s) {
    __shared__ double warp_sums[Threads / 32];
    for (int off = 16; off > 0; off >>= 1) s = __dadd_rn(s, __shfl_xor_sync(0xffffffffu, s, off));
    if ((threadIdx.x & 31) == 0) warp_sums[threadIdx.x >> 5] = s;
    __syncthreads();
    if (threadIdx.x < 32) {
        s = threadIdx.x < Threads / 32 ? warp_sums[threadIdx.x] : 0.0;
        for (int off = 16; off > 0; off >>= 1) s = __dadd_rn(s, __shfl_xor_sync(0xffffffffu, s, off));
    }
    return s;
}

/* Block b: the sum of squares of x[b*kChunk, (b+1)*kChunk) into partial[b].
 * Thread t reads t, t + kThreads, ... (coalesced) in a fixed order. */
__global__ void __launch_bounds__(kThreads) sum_squares_partial(const float *__restrict__ x, size_t n,
                                                                 double *__restrict__ partial) {
    const size_t base = (size_t)blockIdx.x * kChunk;
    double s = 0.0;
#pragma unroll 8
    for (int k = 0; k < kPerThread; k++) {
        const size_t i = base + (size_t)k * kThreads + threadIdx.x;
        if (i < n) {
            const double xi = (double)x[i];
            s = __fma_rn(xi, xi, s);
        }
    }
    s = block_sum_f64<kThreads>(s);
    if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

/* One block: the partials, thread t summing t, t + kFinalThreads, ... in order,
 * then the fixed tree. */
__global__ void __launch_bounds__(kFinalThreads) sum_squares_final(const double *__restrict__ partial,
                                                                    size_t count, double *out) {
    double s = 0.0;
    for (size_t i = threadIdx.x; i < count; i += kFinalThreads) s = __dadd_rn(s, partial[i]);
    s = block_sum_f64<kFinalThreads>(s);
    if (threadIdx.x == 0) *out = s;
}

__global__ void scale_kernel(float *x, size_t n, float s) {
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        x[i] = __fmul_rn(x[i], s);
}

/* Enough blocks for a grid-stride loop to fill any current GPU without
 * launching millions of tiny blocks. */
unsigned elementwise_blocks(size_t n) {
    size_t b = (n + kThreads - 1) / kThreads;
    const size_t cap = (size_t)1 << 16;
    return (unsigned)(b < cap ? b : cap);
}

}  // namespace

extern "C" srlm_status srlm_cuda_adamw_step(float *master, const float *grad, float *m, float *v, size_t n,
                                            const srlm_cuda_adamw_args *a, void *param,
                                            srlm_dtype param_dtype, void *stream) {
    if (!a) return SRLM_ERR(SRLM_BAD_INPUT, "adamw: no arguments given");
    int kind = 0;
    if (param) {
        if (param_dtype == SRLM_F32) kind = 1;
        else if (param_dtype == SRLM_BF16) kind = 2;
        else return SRLM_ERR(SRLM_BAD_INPUT, "adamw: working copy dtype %s (F32 or BF16)",
                             srlm_dtype_name(param_dtype));
    }
    if (n == 0) return SRLM_OK;
    adamw_kernel<<<elementwise_blocks(n), kThreads, 0, (cudaStream_t)stream>>>(master, grad, m, v, n, *a,
                                                                                param, kind);
    SRLM_CUDA_TRY(cudaGetLastError());
    return SRLM_OK;
}

extern "C" size_t srlm_cuda_sum_squares_workspace(size_t n) {
    const size_t blocks = (n + kChunk - 1) / kChunk;
    return (blocks ? blocks : 1) * sizeof(double);
}

extern "C" srlm_status srlm_cuda_sum_squares(const float *x, size_t n, double *out, void *workspace,
                                             void *stream) {
    cudaStream_t st = (cudaStream_t)stream;
    if (n == 0) {
        SRLM_CUDA_TRY(cudaMemsetAsync(out, 0, sizeof(double), st)); /* +0.0 is all zero bits */
        return SRLM_OK;
    }
    const size_t blocks = (n + kChunk - 1) / kChunk;
    if (blocks > 0x7fffffffu) return SRLM_ERR(SRLM_BAD_INPUT, "sum_squares: %zu values is too many", n);
    double *partial = (double *)workspace;
    sum_squares_partial<<<(unsigned)blocks, kThreads, 0, st>>>(x, n, partial);
    SRLM_CUDA_TRY(cudaGetLastError());
    sum_squares_final<<<1, kFinalThreads, 0, st>>>(partial, blocks, out);
    SRLM_CUDA_TRY(cudaGetLastError());
    return SRLM_OK;
}

extern "C" srlm_status srlm_cuda_scale_f32(float *x, size_t n, float s, void *stream) {
    if (n == 0) return SRLM_OK;
    scale_kernel<<<elementwise_blocks(n), kThreads, 0, (cudaStream_t)stream>>>(x, n, s);
    SRLM_CUDA_TRY(cudaGetLastError());
    return SRLM_OK;
}
