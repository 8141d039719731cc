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
 * (attention_bwd_sm90.cu) too. ptxas (CUDA 13.0): 110 registers at head dim
 * 64, 144 at 128, no spills, 3 barriers (112 and 143 without ping-pong); the
 * overlapping variant below 126 and 160 (128 and 160).
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

template <int HD, int STAGES> struct Layout {
    static constexpr uint32_t kQBytes = kBQ * HD * 2;
    static constexpr uint32_t kTileBytes = kBK * HD * 2; /* one K or V tile */
    /* Q, then STAGES buffers of (K tile, V tile), plus slack to align the
     * base to 1024 bytes (the swizzle repeats every 8 rows of 128 bytes, and
     * the instructions apply it to absolute shared-memory addresses) */
    static constexpr size_t kSmem = kQBytes + 2 * STAGES * (size_t)kTileBytes + 1024;
};

/* One thread's place in the block and what its rows see: both kernels'. */
struct FwdRows {
    int b, h, t0, wg, w0, n_past, n_new, kvh, kv_end, k_begin;
    int lim[2], lo[2];   /* this lane's rows w0 + g and w0 + g + 8 see keys lo <= j < lim */
    int warp_full;       /* keys below it every row of the warp sees ... */
    int warp_lo_all;     /* ... and from this one: no mask needed between */
    int64_t kbase;
};

__device__ __forceinline__ FwdRows fwd_rows(const Params &p) {
    FwdRows r;
    /* the last query tiles see the most keys: start them first */
    r.b = blockIdx.z, r.h = blockIdx.y, r.t0 = (gridDim.x - 1 - blockIdx.x) * kBQ;
    r.wg = threadIdx.x / 128;
    const int warp = (threadIdx.x / 32) % 4, g = (threadIdx.x % 32) / 4;
    r.n_past = p.n_past[r.b], r.n_new = p.n_new[r.b], r.kvh = r.h / p.group;
    r.kv_end = r.t0 < r.n_new ? r.n_past + min(r.t0 + kBQ, r.n_new) : 0;
    r.k_begin = r.kv_end > 0 ? key_lo(p, r.t0) / kBK * kBK : 0;
    /* the warpgroup's 64 rows from t0 + 64 wg, the warp's 16 from w0 */
    r.w0 = r.t0 + 64 * r.wg + 16 * warp;
#pragma unroll
    for (int i = 0; i < 2; i++) {
        const int t = r.w0 + g + 8 * i;
        r.lim[i] = t < r.n_new ? r.n_past + t + 1 : 0;
        r.lo[i] = t < r.n_new ? key_lo(p, t) : 0;
    }
    /* a tile none of the warp's rows see is masked whole */
    r.warp_full = r.w0 + 16 <= r.n_new ? r.n_past + r.w0 + 1 : 0;
    r.warp_lo_all = r.w0 < r.n_new ? key_lo(p, min(r.w0 + 16, r.n_new) - 1) : 0;
    r.kbase = cache_row(p, r.b, 0);
    return r;
}

/* Q's rows of the block into the tile at q_s, by cp.async (uncommitted). */
template <int HD>
__device__ __forceinline__ void load_q(const Params &p, const FwdRows &r, uint32_t q_s) {
    const __nv_bfloat16 *q_rows = (const __nv_bfloat16 *)p.q + ((int64_t)r.b * p.T + r.t0) * p.ldq + (int64_t)r.h * HD;
    load_sw128<HD, kThreads>(q_s, q_rows, p.ldq, kBQ, min(kBQ, r.n_new - r.t0));
}

/* The K and V tile of keys k0 .. k0 + 63 into kd and kd + one tile (uncommitted). */
template <int HD>
__device__ __forceinline__ void load_kv(const Params &p, const FwdRows &r, int k0, uint32_t kd) {
    const int nk = min(kBK, r.kv_end - k0);
    const __nv_bfloat16 *k = (const __nv_bfloat16 *)p.k, *v = (const __nv_bfloat16 *)p.v;
    load_sw128<HD, kThreads>(kd, k + (r.kbase + k0) * p.ldk + (int64_t)r.kvh * HD, p.ldk, kBK, nk);
    load_sw128<HD, kThreads>(kd + Layout<HD, 2>::kTileBytes, v + (r.kbase + k0) * p.ldv + (int64_t)r.kvh * HD,
                             p.ldv, kBK, nk);
}

/* S (this warpgroup's 64 rows x 64 keys) = Q K^T, issued (not waited for). */
template <int HD>
__device__ __forceinline__ void issue_scores(float (&s)[kBK / 8][4], uint32_t q_s, int wg, uint32_t ks) {
#pragma unroll
    for (int kk = 0; kk < HD / 16; kk++) /* HD / 16 steps of 16 head columns */
        wgmma_ss_n64(s, desc_k_major(q_s, kBQ, 64 * wg, kk), desc_k_major(ks, kBK, 0, kk), kk > 0);
}

/* O += P V, 16 keys a step, V read N-major, issued (not waited for). */
template <int HD>
__device__ __forceinline__ void issue_pv(float (&o)[HD / 8][4], const uint32_t (&pa)[kBK / 16][4], uint32_t vs) {
#pragma unroll
    for (int kc = 0; kc < kBK / 16; kc++) wgmma_rs<HD>(o, pa[kc], desc_n_major(vs, kBK, kc));
}

template <int HD, bool PINGPONG>
__global__ void __launch_bounds__(kThreads, 1) fwd_sm90_kernel(Params p) {
    using L = Layout<HD, 2>;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    unsigned char *unused;
    const uint32_t base = aligned_base(smem_raw, &unused);
    const uint32_t q_s = base, kv_s = base + L::kQBytes; /* buffer i: K at i * 2 tiles, V after it */
    const FwdRows r = fwd_rows(p);
    const int wg = r.wg;

    load_q<HD>(p, r, q_s);
    cp_async_commit();
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f}, o[HD / 8][4];
#pragma unroll
    for (int i = 0; i < HD / 8; i++) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;

    if (r.kv_end > 0) load_kv<HD>(p, r, r.k_begin, kv_s);
    cp_async_commit();
    /* ping-pong turns: warpgroup w waits at barrier 1 + w before its S and
     * then arrives at the other's; warpgroup 1 arrives once first so that
     * warpgroup 0 starts, and warpgroup 0 takes that last arrival at the end */
    if (PINGPONG && wg == 1) named_bar_arrive(1, kThreads);
    for (int k0 = r.k_begin, buf = 0; k0 < r.kv_end; k0 += kBK, buf ^= 1) {
        if (k0 + kBK < r.kv_end) load_kv<HD>(p, r, k0 + kBK, kv_s + (buf ^ 1) * 2 * L::kTileBytes);
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
        issue_scores<HD>(s, q_s, wg, ks);
        wgmma_commit();
        wgmma_wait_all();
        fence_regs(s);
        if (PINGPONG) pingpong_pass(wg, kThreads);
        const bool masked = k0 + kBK > r.warp_full || k0 < r.warp_lo_all;
        softmax_step<HD, kBK>(s, m, l, o, r.lim, r.lo, k0, masked, p.scale_log2);
        /* P packed first, so that the products issue back to back */
        uint32_t pa[kBK / 16][4];
        pack_a<kBK>(pa, s);
        fence_regs(pa);
        fence_regs(o);
        wgmma_fence();
        issue_pv<HD>(o, pa, vs);
        wgmma_commit();
        wgmma_wait_all();
        fence_regs(o);
        __syncthreads(); /* everyone is done with buf before the next step refills it */
    }

    if (PINGPONG && wg == 0) named_bar_sync(1, kThreads);

    store_fwd_rows<HD>(p, r.b, r.h, r.w0, r.n_new, o, m, l);
}

/* The same forward with each tile's scores overlapping the last tile's
 * weighted sum (FlashAttention-3's intra-warpgroup overlap): step j issues
 * S_j = Q K_j^T and O += P_(j-1) V_(j-1) together, waits for S_j only, and
 * computes P_j while the tensor cores still add P_(j-1) V_(j-1); O moves to
 * the new running max after that lands (the scale applies to the sum so far,
 * which P_(j-1) V_(j-1) belongs to: both were taken at the old max). V_(j-1)
 * is read while K_(j+1) and V_(j+1) stream in: three buffers. Same results
 * as fwd_sm90_kernel up to the order of roundings (the output is scaled
 * after a product is added rather than before). */
template <int HD, bool PINGPONG>
__global__ void __launch_bounds__(kThreads, 1) fwd_sm90_overlap_kernel(Params p) {
    using L = Layout<HD, 3>;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    unsigned char *unused;
    const uint32_t base = aligned_base(smem_raw, &unused);
    const uint32_t q_s = base, kv_s = base + L::kQBytes; /* buffer i: K at i * 2 tiles, V after it */
    const FwdRows r = fwd_rows(p);
    const int wg = r.wg;
    const int n_tiles = r.kv_end > 0 ? (r.kv_end - r.k_begin + kBK - 1) / kBK : 0;
    auto kbuf = [&](int j) { return kv_s + (uint32_t)(j % 3) * 2 * L::kTileBytes; };

    load_q<HD>(p, r, q_s);
    if (n_tiles > 0) load_kv<HD>(p, r, r.k_begin, kbuf(0));
    cp_async_commit();
    if (n_tiles > 1) load_kv<HD>(p, r, r.k_begin + kBK, kbuf(1));
    cp_async_commit();
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f}, o[HD / 8][4], alpha[2];
#pragma unroll
    for (int i = 0; i < HD / 8; i++) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
    uint32_t pa[kBK / 16][4]; /* the last tile's weights, packed as the A operand */
    if (PINGPONG && wg == 1) named_bar_arrive(1, kThreads);

    if (n_tiles > 0) { /* tile 0: its scores alone (O is zero: nothing to rescale) */
        cp_async_wait_one();
        fence_proxy_async();
        __syncthreads();
        float s[kBK / 8][4];
        if (PINGPONG) pingpong_wait(wg, kThreads);
        wgmma_fence();
        issue_scores<HD>(s, q_s, wg, kbuf(0));
        wgmma_commit();
        wgmma_wait_all();
        fence_regs(s);
        if (PINGPONG) pingpong_pass(wg, kThreads);
        const int k0 = r.k_begin;
        softmax_scores<kBK>(s, m, l, alpha, r.lim, r.lo, k0, k0 + kBK > r.warp_full || k0 < r.warp_lo_all,
                            p.scale_log2);
        pack_a<kBK>(pa, s);
    }
    for (int j = 1; j < n_tiles; j++) {
        const int k0 = r.k_begin + j * kBK;
        /* buffer (j + 1) % 3 held tile j - 2, done with at step j - 1's end */
        if (j + 1 < n_tiles) load_kv<HD>(p, r, k0 + kBK, kbuf(j + 1));
        cp_async_commit();
        cp_async_wait_one();
        fence_proxy_async();
        __syncthreads();
        float s[kBK / 8][4];
        if (PINGPONG) pingpong_wait(wg, kThreads);
        fence_regs(pa);
        fence_regs(o);
        wgmma_fence();
        issue_scores<HD>(s, q_s, wg, kbuf(j));
        wgmma_commit();
        issue_pv<HD>(o, pa, kbuf(j - 1) + L::kTileBytes);
        wgmma_commit();
        wgmma_wait_one(); /* S_j: P_(j-1) V_(j-1) may still run */
        fence_regs(s);
        if (PINGPONG) pingpong_pass(wg, kThreads);
        softmax_scores<kBK>(s, m, l, alpha, r.lim, r.lo, k0, k0 + kBK > r.warp_full || k0 < r.warp_lo_all,
                            p.scale_log2);
        wgmma_wait_all();
        fence_regs(o);
        fence_regs(pa);
        rescale_rows<HD>(o, alpha);
        pack_a<kBK>(pa, s);
        __syncthreads(); /* everyone is done with buffer j - 1 before the next step refills it */
    }
    if (n_tiles > 0) { /* the last tile's weighted sum */
        fence_regs(pa);
        fence_regs(o);
        wgmma_fence();
        issue_pv<HD>(o, pa, kbuf(n_tiles - 1) + L::kTileBytes);
        wgmma_commit();
        wgmma_wait_all();
        fence_regs(o);
    }

    if (PINGPONG && wg == 0) named_bar_sync(1, kThreads);

    store_fwd_rows<HD>(p, r.b, r.h, r.w0, r.n_new, o, m, l);
}

/* -1: not read yet. Atomic (relaxed): a test may set one while another thread
 * launches; every reader sees the old or the new value. */
std::atomic<int> g_pingpong{-1}, g_overlap{-1};

template <int HD> srlm_status launch(const Params &p, cudaStream_t stream) {
    const bool overlap = sm90_overlap(), pingpong = sm90_pingpong();
    const size_t smem = overlap ? Layout<HD, 3>::kSmem : Layout<HD, 2>::kSmem;
    auto kernel = overlap ? (pingpong ? fwd_sm90_overlap_kernel<HD, true> : fwd_sm90_overlap_kernel<HD, false>)
                          : (pingpong ? fwd_sm90_kernel<HD, true> : fwd_sm90_kernel<HD, false>);
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
    static std::atomic<int> cached[64]; /* 0 unknown, 1 yes, 2 no */
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || dev < 0 || dev >= 64) {
        cudaGetLastError();
        return 0;
    }
    int known = cached[dev].load(std::memory_order_relaxed);
    if (known == 0) {
        int major = 0, minor = 0;
        cudaFuncAttributes a64, a128;
        bool ok = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) == cudaSuccess &&
                  cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) == cudaSuccess &&
                  major == 9 && minor == 0 &&
                  cudaFuncGetAttributes(&a64, fwd_sm90_kernel<64, true>) == cudaSuccess &&
                  cudaFuncGetAttributes(&a128, fwd_sm90_kernel<128, true>) == cudaSuccess &&
                  Layout<128, 3>::kSmem <= smem_optin() && bwd_smem_max() <= smem_optin();
        if (!ok) cudaGetLastError(); /* a missing image is an answer, not an error */
        known = ok ? 1 : 2;
        cached[dev].store(known, std::memory_order_relaxed);
    }
    return known == 1;
}

std::atomic<int> g_forced_path{-1}; /* -1: not read yet; else SRLM_CUDA_ATTN_PATH_* */

}  // namespace

extern "C" void srlm_cuda_attention_force_path(int path) { g_forced_path.store(path, std::memory_order_relaxed); }

extern "C" int srlm_cuda_attention_sm90_available(void) { return device_has_sm90_image(); }

extern "C" void srlm_cuda_attention_sm90_pingpong(int on) { g_pingpong.store(on != 0, std::memory_order_relaxed); }

extern "C" void srlm_cuda_attention_sm90_overlap(int on) { g_overlap.store(on != 0, std::memory_order_relaxed); }

/* A switch's value, read from the environment the first time (env_on: the
 * value it takes from getenv(name)). */
static int switch_value(std::atomic<int> &sw, const char *name, int (*env_on)(const char *)) {
    int v = sw.load(std::memory_order_relaxed);
    if (v < 0) {
        int expected = -1;
        sw.compare_exchange_strong(expected, env_on(getenv(name)), std::memory_order_relaxed);
        v = sw.load(std::memory_order_relaxed);
    }
    return v;
}

static int unless_zero(const char *env) { return !(env && strcmp(env, "0") == 0); }
static int only_one(const char *env) { return env && strcmp(env, "1") == 0; }
static int path_of(const char *env) { /* SRLM_CUDA_ATTN_SM90=0 turns it off, for comparisons */
    return env && strcmp(env, "0") == 0 ? SRLM_CUDA_ATTN_PATH_MMA : SRLM_CUDA_ATTN_PATH_AUTO;
}

bool attn::sm90::sm90_pingpong() { return switch_value(g_pingpong, "SRLM_CUDA_ATTN_PINGPONG", unless_zero) != 0; }

bool attn::sm90::sm90_overlap() { return switch_value(g_overlap, "SRLM_CUDA_ATTN_OVERLAP", only_one) != 0; }

bool attn::use_sm90(int hd) {
    if (hd != 64 && hd != 128) return false;
    if (switch_value(g_forced_path, "SRLM_CUDA_ATTN_SM90", path_of) == SRLM_CUDA_ATTN_PATH_MMA) return false;
    return device_has_sm90_image() != 0;
}

srlm_status attn::launch_fwd_sm90(const Params &p, cudaStream_t stream) {
    return p.hd == 64 ? launch<64>(p, stream) : launch<128>(p, stream);
}
