/* The wgmma building blocks of the Hopper attention kernels, one product of
 * each kind in one block (kernels/wgmma_probe.h says what it computes and
 * why it exists). Every call below is the attention kernels' own:
 * load_sw128 and the proxy fence, desc_k_major over a 128- and a 64-row
 * tile, wgmma_ss_n64, the accumulator layout, pack_a, desc_n_major and
 * wgmma_rs. Compiled for sm_90a only (kernels/CMakeLists.txt). */
#include "attention_sm90.cuh"
#include "cuda_check.h"
#include "wgmma_probe.h"

using namespace attn;
using namespace attn::sm90;

namespace {

constexpr int kBRows = 64; /* b and v: one key tile */

template <int HD, int AROWS> constexpr size_t probe_smem() {
    return (size_t)(AROWS + 2 * kBRows) * HD * 2 + 1024; /* + slack for the 1024-byte alignment */
}

template <int HD, int AROWS>
__global__ void __launch_bounds__(2 * AROWS, 1)
    probe_kernel(const __nv_bfloat16 *a, const __nv_bfloat16 *b, const __nv_bfloat16 *v, float *c, float *d) {
    constexpr int kThreads = 2 * AROWS;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    unsigned char *unused;
    const uint32_t a_s = aligned_base(smem_raw, &unused), b_s = a_s + AROWS * HD * 2, v_s = b_s + kBRows * HD * 2;
    load_sw128<HD, kThreads>(a_s, a, HD, AROWS, AROWS);
    load_sw128<HD, kThreads>(b_s, b, HD, kBRows, kBRows);
    load_sw128<HD, kThreads>(v_s, v, HD, kBRows, kBRows);
    cp_async_commit();
    cp_async_wait_all();
    fence_proxy_async();
    __syncthreads();

    const int wg = threadIdx.x / 128, warp = (threadIdx.x / 32) % 4, lane = threadIdx.x % 32;
    const int row = 64 * wg + 16 * warp + lane / 4, col = 2 * (lane % 4);

    float s[kBRows / 8][4];
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < HD / 16; kk++)
        wgmma_ss_n64(s, desc_k_major(a_s, AROWS, 64 * wg, kk), desc_k_major(b_s, kBRows, 0, kk), kk > 0);
    wgmma_commit();
    wgmma_wait_all();
    fence_regs(s);
#pragma unroll
    for (int nt = 0; nt < kBRows / 8; nt++)
#pragma unroll
        for (int e = 0; e < 4; e++) c[(int64_t)(row + 8 * (e / 2)) * kBRows + nt * 8 + col + (e & 1)] = s[nt][e];

    uint32_t pa[kBRows / 16][4];
    pack_a<kBRows>(pa, s);
    float o[HD / 8][4];
#pragma unroll
    for (int i = 0; i < HD / 8; i++) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
    fence_regs(pa);
    fence_regs(o);
    wgmma_fence();
#pragma unroll
    for (int kc = 0; kc < kBRows / 16; kc++) wgmma_rs<HD>(o, pa[kc], desc_n_major(v_s, kBRows, kc));
    wgmma_commit();
    wgmma_wait_all();
    fence_regs(o);
#pragma unroll
    for (int nt = 0; nt < HD / 8; nt++)
#pragma unroll
        for (int e = 0; e < 4; e++) d[(int64_t)(row + 8 * (e / 2)) * HD + nt * 8 + col + (e & 1)] = o[nt][e];
}

template <int HD, int AROWS>
srlm_status launch(const void *a, const void *b, const void *v, float *c, float *d, cudaStream_t stream) {
    constexpr size_t smem = probe_smem<HD, AROWS>();
    auto kernel = probe_kernel<HD, AROWS>;
    SRLM_CUDA_TRY(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    kernel<<<1, 2 * AROWS, smem, stream>>>((const __nv_bfloat16 *)a, (const __nv_bfloat16 *)b,
                                           (const __nv_bfloat16 *)v, c, d);
    SRLM_CUDA_TRY(cudaGetLastError());
    return SRLM_OK;
}

}  // namespace

extern "C" srlm_status srlm_cuda_wgmma_probe(int hd, int a_rows, const void *a, const void *b, const void *v,
                                             float *c, float *d, void *stream) {
    if ((hd != 64 && hd != 128) || (a_rows != 64 && a_rows != 128))
        return SRLM_ERR(SRLM_BAD_INPUT, "wgmma probe: head_dim %d and a_rows %d (expected 64 or 128 each)", hd,
                        a_rows);
    cudaStream_t s = (cudaStream_t)stream;
    if (hd == 64) return a_rows == 64 ? launch<64, 64>(a, b, v, c, d, s) : launch<64, 128>(a, b, v, c, d, s);
    return a_rows == 64 ? launch<128, 64>(a, b, v, c, d, s) : launch<128, 128>(a, b, v, c, d, s);
}
