#include <cuda_runtime.h>

#include "cuda_check.h"
#include "rmsnorm.h"

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

}  // namespace

extern "C" srlm_status srlm_cuda_rmsnorm_f32(float *y, const float *x, const float *w, int rows,
                                             int cols, float eps, void *stream) {
    if (rows == 0) return SRLM_OK;
    rmsnorm_f32_kernel<<<rows, kThreads, 0, (cudaStream_t)stream>>>(y, x, w, cols, eps);
    SRLM_CUDA_TRY(cudaGetLastError());
    return SRLM_OK;
}
