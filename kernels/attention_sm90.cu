/* Flash-attention forward on Hopper's warpgroup tensor-core instructions
 * (wgmma, sm_90a): the algorithm and contract of fwd_mma_kernel in
 * attention.cu (query-row tiles walking key tiles with an online softmax,
 * causal, GQA, packed sequences, lse, the backward's statistics mode), each
 * product issued by a warpgroup over 64 query rows (attention_sm90.cuh):
 *   S (64 x 64 keys) = Q K^T   wgmma m64n64k16, Q and K from shared memory
 *   O (64 x HD)     += P V     wgmma m64nHDk16, P from registers, V read N-major
 * with the mma kernel's online softmax between them. Two warpgroups a block
 * (128 query rows) taking turns to issue S (ping-pong), so that one group's
 * softmax runs under the other's products; the next K/V tile streams in by
 * cp.async while this one is used. Compiled for sm_90a only
 * (kernels/CMakeLists.txt); attn::launch_fwd picks it on compute capability
 * 9.0 devices where its image loaded, and that choice holds for the backward
 * (attention_bwd_sm90.cu) too. ptxas (CUDA 13.0): 120 registers at head dim
 * 64, 155 at 128, no spills, 3 barriers (121 and 156 without ping-pong).
 * Written without a GPU at hand: test_attention_gpu checks it against the CPU
 * twin (and the mma kernel, forced) on an H100; bench_kernels times both. */
#include <stdlib.h>
#include <string.h>

#include "attention_sm90.cuh"

using namespace attn;
using namespace attn::sm90;

namespace {

constexpr int kThreads = 256;   /* two warpgroups */
constexpr int kBQ = 128;        /* query rows per block: 64 per warpgroup */
constexpr int kBK = 64;         /* keys per tile */

template <int HD> struct Layout {
    static constexpr uint32_t kQBytes = kBQ * HD * 2;
    static constexpr uint32_t kTileBytes = kBK * HD * 2; /* one K or V tile */
    /* Q, then two buffers of (K tile, V tile), plus slack to align the base
     * to 1024 bytes (the swizzle repeats every 8 rows of 128 bytes, and the
     * instructions apply it to absolute shared-memory addresses) */
    static constexpr size_t kSmem = kQBytes + 4 * (size_t)kTileBytes + 1024;
};

template <int HD, bool PINGPONG>
__global__ void __launch_bounds__(kThreads, 1) fwd_sm90_kernel(Params p) {
    using L = Layout<HD>;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    unsigned char *unused;
    const uint32_t base = aligned_base(smem_raw, &unused);
    const uint32_t q_s = base, kv_s = base + L::kQBytes; /* buffer i: K at i * 2 tiles, V after it */

    /* the last query tiles see the most keys: start them first */
    const int b = blockIdx.z, h = blockIdx.y, t0 = (gridDim.x - 1 - blockIdx.x) * kBQ;
    const int wg = threadIdx.x / 128, warp = (threadIdx.x / 32) % 4, lane = threadIdx.x % 32;
    const int g = lane / 4;
    const int n_past = p.n_past[b], n_new = p.n_new[b], kvh = h / p.group;
    const __nv_bfloat16 *q = (const __nv_bfloat16 *)p.q, *k = (const __nv_bfloat16 *)p.k,
                        *v = (const __nv_bfloat16 *)p.v;
    const int kv_end = t0 < n_new ? n_past + min(t0 + kBQ, n_new) : 0;

    const __nv_bfloat16 *q_rows = q + ((int64_t)b * p.T + t0) * p.ldq + (int64_t)h * HD;
    load_sw128<HD, kThreads>(q_s, q_rows, p.ldq, kBQ, min(kBQ, n_new - t0));
    cp_async_commit();

    /* the warpgroup's 64 rows from wr0, the warp's 16 from w0; this lane's
     * rows w0 + g and w0 + g + 8 see keys lo <= j < lim */
    const int wr0 = t0 + 64 * wg, w0 = wr0 + 16 * warp;
    int lim[2], lo[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int t = w0 + g + 8 * r;
        lim[r] = t < n_new ? n_past + t + 1 : 0;
        lo[r] = t < n_new ? key_lo(p, t) : 0;
    }
    /* per warp, the keys every row sees: no mask needed (a tile none of its
     * rows see is masked whole) */
    const int warp_full = w0 + 16 <= n_new ? n_past + w0 + 1 : 0;
    const int warp_lo_all = w0 < n_new ? key_lo(p, min(w0 + 16, n_new) - 1) : 0;

    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f}, o[HD / 8][4];
#pragma unroll
    for (int i = 0; i < HD / 8; i++) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;

    const int64_t kbase = cache_row(p, b, 0);
    auto issue_tile = [&](int k0, int buf) {
        const int nk = min(kBK, kv_end - k0);
        const uint32_t kd = kv_s + buf * 2 * L::kTileBytes;
        load_sw128<HD, kThreads>(kd, k + (kbase + k0) * p.ldk + (int64_t)kvh * HD, p.ldk, kBK, nk);
        load_sw128<HD, kThreads>(kd + L::kTileBytes, v + (kbase + k0) * p.ldv + (int64_t)kvh * HD, p.ldv, kBK, nk);
    };
    const int k_begin = kv_end > 0 ? key_lo(p, t0) / kBK * kBK : 0;
    if (kv_end > 0) issue_tile(k_begin, 0);
    cp_async_commit();
    /* ping-pong turns: warpgroup w waits at barrier 1 + w before its S and
     * then arrives at the other's; warpgroup 1 arrives once first so that
     * warpgroup 0 starts, and warpgroup 0 takes that last arrival at the end */
    if (PINGPONG && wg == 1) named_bar_arrive(1, kThreads);
    for (int k0 = k_begin, buf = 0; k0 < kv_end; k0 += kBK, buf ^= 1) {
        if (k0 + kBK < kv_end) issue_tile(k0 + kBK, buf ^ 1);
        cp_async_commit();
        cp_async_wait_one();
        fence_proxy_async();
        __syncthreads();
        const uint32_t ks = kv_s + buf * 2 * L::kTileBytes, vs = ks + L::kTileBytes;
        /* Every warpgroup runs every tile, also one its rows see none of
         * (the mask then zeroes its weights: no effect): a branch around the
         * products would make ptxas serialize them. Ping-pong: warpgroup 0
         * issues S first, then lets warpgroup 1 issue; so one group's softmax
         * runs while the other's products do, where issuing both at once
         * after the barrier would leave the tensor cores idle during both
         * softmaxes. */
        float s[kBK / 8][4];
        if (PINGPONG) pingpong_wait(wg, kThreads);
        wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < HD / 16; kk++) /* S = Q K^T: HD / 16 steps of 16 head columns */
            wgmma_ss_n64(s, desc_k_major(q_s, kBQ, 64 * wg, kk), desc_k_major(ks, kBK, 0, kk), kk > 0);
        wgmma_commit();
        wgmma_wait_all();
        fence_regs(s);
        if (PINGPONG) pingpong_pass(wg, kThreads);
        const bool masked = k0 + kBK > warp_full || k0 < warp_lo_all;
        softmax_step<HD, kBK>(s, m, l, o, lim, lo, k0, masked, p.scale_log2);
        /* O += P V: 16 keys a step, V read N-major; P packed first, so that
         * the products issue back to back */
        uint32_t pa[kBK / 16][4];
        pack_a<kBK>(pa, s);
        fence_regs(pa);
        fence_regs(o);
        wgmma_fence();
#pragma unroll
        for (int kc = 0; kc < kBK / 16; kc++) wgmma_rs<HD>(o, pa[kc], desc_n_major(vs, kBK, kc));
        wgmma_commit();
        wgmma_wait_all();
        fence_regs(o);
        __syncthreads(); /* everyone is done with buf before the next step refills it */
    }

    if (PINGPONG && wg == 0) named_bar_sync(1, kThreads);

    store_fwd_rows<HD>(p, b, h, w0, n_new, o, m, l);
}

int g_pingpong = -1; /* -1: not read yet */

template <int HD> srlm_status launch(const Params &p, cudaStream_t stream) {
    const size_t smem = Layout<HD>::kSmem;
    auto kernel = sm90_pingpong() ? fwd_sm90_kernel<HD, true> : fwd_sm90_kernel<HD, false>;
    SRLM_CUDA_TRY(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    dim3 grid((p.T + kBQ - 1) / kBQ, p.nh, p.B);
    kernel<<<grid, kThreads, smem, stream>>>(p);
    SRLM_CUDA_TRY(cudaGetLastError());
    return SRLM_OK;
}

/* 1 where the current device can run the sm_90a image (compute capability
 * 9.0, the image loaded, and the shared memory every wgmma kernel asks for
 * allowed), read once per device. */
int device_has_sm90_image() {
    static int cached[64]; /* 0 unknown, 1 yes, 2 no */
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || dev < 0 || dev >= 64) {
        cudaGetLastError();
        return 0;
    }
    if (cached[dev] == 0) {
        int major = 0, minor = 0;
        cudaFuncAttributes a64, a128;
        bool ok = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) == cudaSuccess &&
                  cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) == cudaSuccess &&
                  major == 9 && minor == 0 &&
                  cudaFuncGetAttributes(&a64, fwd_sm90_kernel<64, true>) == cudaSuccess &&
                  cudaFuncGetAttributes(&a128, fwd_sm90_kernel<128, true>) == cudaSuccess &&
                  Layout<128>::kSmem <= smem_optin() && bwd_smem_max() <= smem_optin();
        if (!ok) cudaGetLastError(); /* a missing image is an answer, not an error */
        cached[dev] = ok ? 1 : 2;
    }
    return cached[dev] == 1;
}

int g_forced_path = -1; /* -1: not read yet; else SRLM_CUDA_ATTN_PATH_* */

}  // namespace

extern "C" void srlm_cuda_attention_force_path(int path) { g_forced_path = path; }

extern "C" int srlm_cuda_attention_sm90_available(void) { return device_has_sm90_image(); }

extern "C" void srlm_cuda_attention_sm90_pingpong(int on) { g_pingpong = on != 0; }

bool attn::sm90::sm90_pingpong() {
    if (g_pingpong < 0) {
        const char *env = getenv("SRLM_CUDA_ATTN_PINGPONG");
        g_pingpong = !(env && strcmp(env, "0") == 0);
    }
    return g_pingpong != 0;
}

bool attn::use_sm90(int hd) {
    if (hd != 64 && hd != 128) return false;
    if (g_forced_path < 0) { /* SRLM_CUDA_ATTN_SM90=0 turns it off, for comparisons */
        const char *env = getenv("SRLM_CUDA_ATTN_SM90");
        g_forced_path = env && strcmp(env, "0") == 0 ? SRLM_CUDA_ATTN_PATH_MMA : SRLM_CUDA_ATTN_PATH_AUTO;
    }
    if (g_forced_path == SRLM_CUDA_ATTN_PATH_MMA) return false;
    return device_has_sm90_image() != 0;
}

srlm_status attn::launch_fwd_sm90(const Params &p, cudaStream_t stream) {
    return p.hd == 64 ? launch<64>(p, stream) : launch<128>(p, stream);
}
