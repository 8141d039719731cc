/* Rotate-half RoPE on the GPU, in place. One block per row: the row's cos/sin
 * table (head_dim/2 entries, shared by all heads) goes to shared memory, then the
 * threads rotate the (j, j + half) pairs of every head, consecutive threads on
 * consecutive j (coalesced). CPU twin: cpu_rope_rotate (src/backend/cpu/). */
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>

#include "cuda_check.h"
#include "dtype_io.cuh"
#include "rope.h"

using namespace dtype_io;

namespace {

constexpr int kThreads = 256;

/* The fp32 quantities are the CPU's (and transformers'): inv_freq = 1 / theta^(2j/d)
 * and angle = pos * inv_freq, each rounded to fp32. The transcendentals are
 * evaluated in double and rounded once, i.e. correctly rounded powf/cosf/sinf
 * (glibc's are within an ulp of that). CUDA's own powf may be a few ulps off, and
 * at positions in the thousands that alone moves the angle by ~1e-3 rad. */
template <typename T>
__global__ void __launch_bounds__(kThreads) rope_kernel(T *x, int64_t stride, const int *pos,
                                                        int n_heads, int head_dim, float theta,
                                                        float sign) {
    extern __shared__ float cs[]; /* cos[0..half), then sin[0..half) */
    const int half = head_dim / 2;
    const float p = (float)pos[blockIdx.x];
    for (int j = threadIdx.x; j < half; j += kThreads) {
        const float expo = (float)(2 * j) / (float)head_dim;
        const float inv_freq = 1.0f / (float)pow((double)theta, (double)expo);
        const float angle = p * inv_freq;
        double s, c;
        sincos((double)angle, &s, &c);
        cs[j] = (float)c;
        cs[half + j] = sign * (float)s;
    }
    __syncthreads();
    T *row = x + (int64_t)blockIdx.x * stride;
    const int pairs = n_heads * half;
    for (int q = threadIdx.x; q < pairs; q += kThreads) {
        const int h = q / half, j = q - h * half;
        T *v = row + (int64_t)h * head_dim;
        const float x1 = ld(v[j]), x2 = ld(v[j + half]), c = cs[j], s = cs[half + j];
        st(v + j, x1 * c - x2 * s);
        st(v + j + half, x2 * c + x1 * s);
    }
}

}  // namespace

extern "C" srlm_status srlm_cuda_rope(srlm_view *x, const int *pos, int n_heads, int head_dim,
                                      float theta, float sign, void *stream) {
    if (x->dtype != SRLM_F32 && x->dtype != SRLM_BF16)
        return SRLM_ERR(SRLM_BAD_INPUT, "rope: x dtype %s, expected F32 or BF16",
                        srlm_dtype_name(x->dtype));
    /* up to 1024, the CPU twin's and the model's limit (the cos/sin table in
     * shared memory would fit up to 12288) */
    if (head_dim < 2 || head_dim % 2 || head_dim > 1024 || n_heads < 1)
        return SRLM_ERR(SRLM_BAD_INPUT,
                        "rope: n_heads %d, head_dim %d, expected n_heads >= 1 and an even head_dim "
                        "in 2 .. 1024", n_heads, head_dim);
    /* as the CPU twin: the heads are the first n_heads * head_dim columns, any
     * further columns are left alone */
    if (x->cols < (int64_t)n_heads * head_dim || x->stride < x->cols)
        return SRLM_ERR(SRLM_BAD_INPUT, "rope: x is (%lld, %lld) stride %lld, expected at least %d x %d "
                        "= %lld columns, stride >= cols", (long long)x->rows, (long long)x->cols,
                        (long long)x->stride, n_heads, head_dim, (long long)n_heads * head_dim);
    if (x->rows < 0 || x->rows > INT_MAX || x->cols > INT_MAX)
        return SRLM_ERR(SRLM_BAD_INPUT, "rope: x is (%lld, %lld), expected at most %d of each",
                        (long long)x->rows, (long long)x->cols, INT_MAX);
    if (x->rows == 0) return SRLM_OK;
    const size_t smem = sizeof(float) * (size_t)head_dim;
    cudaStream_t st = (cudaStream_t)stream;
    if (x->dtype == SRLM_F32)
        rope_kernel<float><<<(unsigned)x->rows, kThreads, smem, st>>>(
            (float *)x->data, x->stride, pos, n_heads, head_dim, theta, sign);
    else
        rope_kernel<__nv_bfloat16><<<(unsigned)x->rows, kThreads, smem, st>>>(
            (__nv_bfloat16 *)x->data, x->stride, pos, n_heads, head_dim, theta, sign);
    SRLM_CUDA_TRY(cudaGetLastError());
    return SRLM_OK;
}
