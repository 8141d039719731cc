/* Flash-attention forward on Hopper's warpgroup tensor-core instructions
 * (wgmma, sm_90a): the same algorithm and contract as fwd_mma_kernel in
 * attention.cu (tiles of query rows walking key tiles with an online softmax,
 * causal, GQA, packed sequences, lse, and the backward's statistics mode), with
 * each product issued by a warpgroup of 4 warps over 64 query rows:
 *   S (64 x 64 keys) = Q K^T   wgmma m64n64k16, Q and K read from shared memory
 *   O (64 x HD)     += P V     wgmma m64nHDk16, P from registers, V from shared
 *                              memory read transposed by the instruction
 * A warpgroup's accumulators sit per warp exactly as mma.sync's m16n8 tiles
 * (warp w of the group holds rows 16w..16w+15), so the online softmax and the
 * re-packing of S into P's A fragments are the mma kernel's, unchanged.
 * Two warpgroups a block (128 query rows), one block per SM; Q, K and V sit in
 * shared memory in the 128-byte-swizzled layout the instructions read (rows of
 * 64 head columns, 128 bytes, the 16-byte chunks of row r XORed with r % 8;
 * head dim 128 as two such 64-column halves), loaded by cp.async with the next
 * K/V tile in flight while this one is used.
 * Compiled for sm_90a only (kernels/CMakeLists.txt); attn::launch_fwd picks it
 * on compute capability 9.0 devices where its image loaded. Written without a
 * GPU at hand: test_attention_gpu checks it against the CPU twin and the mma
 * kernel on an H100; bench_kernels times it against both. */
#include <stdlib.h>
#include <string.h>

#include "attention_tiles.cuh"

using namespace attn;

namespace {

constexpr int kThreads = 256;   /* two warpgroups */
constexpr int kBQ = 128;        /* query rows per block: 64 per warpgroup */
constexpr int kBK = 64;         /* keys per tile */
constexpr uint32_t kRowBytes = 128; /* one swizzled row: 64 bf16 */

template <int HD> struct Layout {
    static constexpr uint32_t kQBytes = kBQ * HD * 2;
    static constexpr uint32_t kTileBytes = kBK * HD * 2; /* one K or V tile */
    /* Q, then two buffers of (K tile, V tile), plus slack to align the base
     * to 1024 bytes (the swizzle repeats every 8 rows of 128 bytes, and the
     * instructions apply it to absolute shared-memory addresses) */
    static constexpr size_t kSmem = kQBytes + 4 * (size_t)kTileBytes + 1024;
};

/* ---- wgmma and its fences (PTX ISA: "Asynchronous Warpgroup Level Matrix
 * Multiply-Accumulate Instructions") ---- */

/* Shared-memory matrix descriptor: start address, leading and stride byte
 * offsets (all >> 4) and the 128-byte swizzle mode (1 in bits 62-63). */
__device__ __forceinline__ uint64_t smem_desc(uint32_t addr, uint32_t lead_bytes, uint32_t stride_bytes) {
    return (uint64_t)((addr & 0x3FFFFu) >> 4) | ((uint64_t)((lead_bytes & 0x3FFFFu) >> 4) << 16) |
           ((uint64_t)((stride_bytes & 0x3FFFFu) >> 4) << 32) | (1ull << 62);
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_wait_all() { asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory"); }
/* shared memory written by this thread's cp.async or plain stores becomes
 * visible to the tensor cores' (async proxy) reads after the next barrier */
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

#define SRLM_D4(i) "+f"(d[i][0]), "+f"(d[i][1]), "+f"(d[i][2]), "+f"(d[i][3])
#define SRLM_D32 SRLM_D4(0), SRLM_D4(1), SRLM_D4(2), SRLM_D4(3), SRLM_D4(4), SRLM_D4(5), SRLM_D4(6), SRLM_D4(7)
#define SRLM_D64 SRLM_D32, SRLM_D4(8), SRLM_D4(9), SRLM_D4(10), SRLM_D4(11), SRLM_D4(12), SRLM_D4(13), \
                 SRLM_D4(14), SRLM_D4(15)

/* d (64 x 64, fp32) = (accumulate ? d : 0) + A B, A (64 x 16) and B (16 x 64,
 * stored as 64 rows of 16: K-major) both from shared memory. */
__device__ __forceinline__ void wgmma_ss_n64(float (&d)[8][4], uint64_t a, uint64_t b, int accumulate) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {"
                 "%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"
                 "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, "
                 "%32, %33, p, 1, 1, 0, 0;\n}\n"
                 : SRLM_D32
                 : "l"(a), "l"(b), "r"(accumulate));
}

/* d (64 x 64) += A B, A (64 x 16 bf16) in registers (mma.sync's A fragment
 * per warp), B (16 x 64) from shared memory stored N-major (transposed). */
__device__ __forceinline__ void wgmma_rs_n64(float (&d)[8][4], const uint32_t (&a)[4], uint64_t b) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {"
                 "%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"
                 "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, "
                 "{%32,%33,%34,%35}, %36, p, 1, 1, 1;\n}\n"
                 : SRLM_D32
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(1));
}

/* As wgmma_rs_n64 with N = 128. */
__device__ __forceinline__ void wgmma_rs_n128(float (&d)[16][4], const uint32_t (&a)[4], uint64_t b) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
                 "%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"
                 "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,"
                 "%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,"
                 "%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63}, "
                 "{%64,%65,%66,%67}, %68, p, 1, 1, 1;\n}\n"
                 : SRLM_D64
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(1));
}

template <int HD> __device__ __forceinline__ void wgmma_rs(float (&d)[HD / 8][4], const uint32_t (&a)[4], uint64_t b);
template <> __device__ __forceinline__ void wgmma_rs<64>(float (&d)[8][4], const uint32_t (&a)[4], uint64_t b) {
    wgmma_rs_n64(d, a, b);
}
template <> __device__ __forceinline__ void wgmma_rs<128>(float (&d)[16][4], const uint32_t (&a)[4], uint64_t b) {
    wgmma_rs_n128(d, a, b);
}

/* Byte offset of 16-byte chunk c (head columns 8c..8c+7) of row r in a tile
 * of `rows` rows: 64-column halves one after the other, 128-byte rows, the
 * chunk's position within its row XORed with r % 8. */
__device__ __forceinline__ uint32_t sw128_offset(int rows, int r, int c) {
    return (uint32_t)((c >> 3) * rows * kRowBytes + r * kRowBytes + (((c & 7) ^ (r & 7)) << 4));
}

/* `rows` rows of HD bf16 (row r at src + r * ld) into the swizzled tile at
 * shared address dst by cp.async, 16 bytes a copy; rows >= valid zeroed (the
 * cache past the end may hold NaN, and 0 * NaN would poison the products). */
template <int HD>
__device__ __forceinline__ void load_sw128(uint32_t dst, const __nv_bfloat16 *src, int64_t ld, int rows, int valid) {
    constexpr int kVec = HD / 8;
    for (int i = threadIdx.x; i < rows * kVec; i += kThreads) {
        const int r = i / kVec, c = i % kVec;
        const uint32_t a = dst + sw128_offset(rows, r, c);
        if (r < valid)
            asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(a),
                         "l"(__cvta_generic_to_global(src + r * ld + c * 8)));
        else
            asm volatile("st.shared.v4.u32 [%0], {%1, %1, %1, %1};\n" ::"r"(a), "r"(0));
    }
}

template <int HD>
__global__ void __launch_bounds__(kThreads, 1) fwd_sm90_kernel(Params p) {
    using L = Layout<HD>;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    const uint32_t base = ((uint32_t)__cvta_generic_to_shared(smem_raw) + 1023u) & ~1023u;
    const uint32_t q_s = base, kv_s = base + L::kQBytes; /* buffer i: K at i * 2 tiles, V after it */

    /* the last query tiles see the most keys: start them first */
    const int b = blockIdx.z, h = blockIdx.y, t0 = (gridDim.x - 1 - blockIdx.x) * kBQ;
    const int wg = threadIdx.x / 128, warp = (threadIdx.x / 32) % 4, lane = threadIdx.x % 32;
    const int g = lane / 4, tig = lane % 4;
    const int n_past = p.n_past[b], n_new = p.n_new[b], kvh = h / p.group;
    const __nv_bfloat16 *q = (const __nv_bfloat16 *)p.q, *k = (const __nv_bfloat16 *)p.k,
                        *v = (const __nv_bfloat16 *)p.v;
    const int kv_end = t0 < n_new ? n_past + min(t0 + kBQ, n_new) : 0;

    load_sw128<HD>(q_s, q + ((int64_t)b * p.T + t0) * p.ldq + (int64_t)h * HD, p.ldq, kBQ, min(kBQ, n_new - t0));
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
    /* keys the warpgroup's rows see at all (a product is the whole group's),
     * and per warp the keys every row sees (no mask needed) */
    const int wg_lim = wr0 < n_new ? n_past + min(wr0 + 64, n_new) : 0;
    const int wg_lo = wr0 < n_new ? key_lo(p, wr0) : 0;
    const int warp_full = w0 + 16 <= n_new ? n_past + w0 + 1 : 0;
    const int warp_lo_all = w0 < n_new ? key_lo(p, min(w0 + 16, n_new) - 1) : 0;

    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f}, o[HD / 8][4];
#pragma unroll
    for (int i = 0; i < HD / 8; i++) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;

    const int64_t kbase = cache_row(p, b, 0);
    auto issue_tile = [&](int k0, int buf) {
        const int nk = min(kBK, kv_end - k0);
        const uint32_t kd = kv_s + buf * 2 * L::kTileBytes;
        load_sw128<HD>(kd, k + (kbase + k0) * p.ldk + (int64_t)kvh * HD, p.ldk, kBK, nk);
        load_sw128<HD>(kd + L::kTileBytes, v + (kbase + k0) * p.ldv + (int64_t)kvh * HD, p.ldv, kBK, nk);
    };
    const int k_begin = kv_end > 0 ? key_lo(p, t0) / kBK * kBK : 0;
    if (kv_end > 0) issue_tile(k_begin, 0);
    cp_async_commit();
    for (int k0 = k_begin, buf = 0; k0 < kv_end; k0 += kBK, buf ^= 1) {
        if (k0 + kBK < kv_end) issue_tile(k0 + kBK, buf ^ 1);
        cp_async_commit();
        cp_async_wait_one();
        fence_proxy_async();
        __syncthreads();
        if (k0 < wg_lim && k0 + kBK > wg_lo) { /* uniform over the warpgroup */
            const uint32_t ks = kv_s + buf * 2 * L::kTileBytes, vs = ks + L::kTileBytes;
            /* S = Q K^T: HD / 16 steps of 16 head columns, 32 bytes into a
             * swizzled row each, the next 64-column half after four */
            float s[kBK / 8][4];
            wgmma_fence();
#pragma unroll
            for (int kk = 0; kk < HD / 16; kk++) {
                const uint32_t col = (uint32_t)(kk >> 2), step = (uint32_t)(kk & 3) * 32;
                const uint32_t qa = q_s + col * kBQ * kRowBytes + wg * 64 * kRowBytes + step;
                const uint64_t da = smem_desc(qa, 16, 8 * kRowBytes);
                const uint64_t db = smem_desc(ks + col * kBK * kRowBytes + step, 16, 8 * kRowBytes);
                wgmma_ss_n64(s, da, db, kk > 0);
            }
            wgmma_commit();
            wgmma_wait_all();
            const bool masked = k0 + kBK > warp_full || k0 < warp_lo_all;
            softmax_step<HD, kBK>(s, m, l, o, lim, lo, k0, masked, p.scale_log2);
            /* O += P V: 16 keys a step; V is read N-major, its 64-column
             * halves kBK rows apart (leading offset), 8-row groups 1024 bytes
             * apart (stride offset) */
            uint32_t pa[kBK / 16][4]; /* all of P packed first: the products then issue back to back */
#pragma unroll
            for (int kc = 0; kc < kBK / 16; kc++) {
                pa[kc][0] = pack_bf16(s[2 * kc][0], s[2 * kc][1]);
                pa[kc][1] = pack_bf16(s[2 * kc][2], s[2 * kc][3]);
                pa[kc][2] = pack_bf16(s[2 * kc + 1][0], s[2 * kc + 1][1]);
                pa[kc][3] = pack_bf16(s[2 * kc + 1][2], s[2 * kc + 1][3]);
            }
            wgmma_fence();
#pragma unroll
            for (int kc = 0; kc < kBK / 16; kc++)
                wgmma_rs<HD>(o, pa[kc], smem_desc(vs + kc * 16 * kRowBytes, kBK * kRowBytes, 8 * kRowBytes));
            wgmma_commit();
            wgmma_wait_all();
        }
        __syncthreads(); /* everyone is done with buf before the next step refills it */
    }

    /* row sums over the lane quad, then rows g and g + 8 of the warp's 16 */
    const __nv_bfloat16 *dout = (const __nv_bfloat16 *)p.dout;
    __nv_bfloat16 *out = (__nv_bfloat16 *)p.out;
#pragma unroll
    for (int r = 0; r < 2; r++) {
        float lr = l[r];
        lr += __shfl_xor_sync(0xffffffffu, lr, 1);
        lr += __shfl_xor_sync(0xffffffffu, lr, 2);
        const int t = w0 + g + 8 * r;
        const bool real = t < n_new;
        const float inv = lr > 0.0f ? 1.0f / lr : 0.0f;
        const int64_t row = (int64_t)b * p.T + t;
        float dsum = 0.0f;
#pragma unroll
        for (int nt = 0; nt < HD / 8; nt++) {
            const int col = h * HD + nt * 8 + 2 * tig;
            const float x0 = real ? o[nt][2 * r] * inv : 0.0f, x1 = real ? o[nt][2 * r + 1] * inv : 0.0f;
            if (t >= p.T) continue;
            if (p.dvec) {
                const __nv_bfloat16 *dr = dout + row * p.lddo + col;
                dsum += x0 * ld(dr[0]) + x1 * ld(dr[1]);
            } else {
                *reinterpret_cast<__nv_bfloat162 *>(out + row * p.ldo + col) = __floats2bfloat162_rn(x0, x1);
            }
        }
        if (p.dvec) {
            dsum += __shfl_xor_sync(0xffffffffu, dsum, 1);
            dsum += __shfl_xor_sync(0xffffffffu, dsum, 2);
        }
        if (tig == 0 && t < p.T) {
            if (p.lse) p.lse[row * p.nh + h] = real ? (m[r] + log2f(lr)) * kLn2 : 0.0f;
            if (p.dvec) p.dvec[row * p.nh + h] = dsum;
        }
    }
}

template <int HD> srlm_status launch(const Params &p, cudaStream_t stream) {
    const size_t smem = Layout<HD>::kSmem;
    SRLM_CUDA_TRY(cudaFuncSetAttribute(fwd_sm90_kernel<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    dim3 grid((p.T + kBQ - 1) / kBQ, p.nh, p.B);
    fwd_sm90_kernel<HD><<<grid, kThreads, smem, stream>>>(p);
    SRLM_CUDA_TRY(cudaGetLastError());
    return SRLM_OK;
}

/* 1 where the current device can run the sm_90a image (compute capability
 * 9.0 and the image loaded), read once per device. */
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
                  cudaFuncGetAttributes(&a64, fwd_sm90_kernel<64>) == cudaSuccess &&
                  cudaFuncGetAttributes(&a128, fwd_sm90_kernel<128>) == cudaSuccess &&
                  Layout<128>::kSmem <= smem_optin();
        if (!ok) cudaGetLastError(); /* a missing image is an answer, not an error */
        cached[dev] = ok ? 1 : 2;
    }
    return cached[dev] == 1;
}

int g_forced_path = -1; /* -1: not read yet; else srlm_cuda_attn_fwd_path */

}  // namespace

extern "C" void srlm_cuda_attention_fwd_force_path(int path) { g_forced_path = path; }

extern "C" int srlm_cuda_attention_fwd_sm90_available(void) { return device_has_sm90_image(); }

bool attn::use_fwd_sm90(const Params &p) {
    if (p.hd != 64 && p.hd != 128) return false;
    if (g_forced_path < 0) { /* SRLM_CUDA_ATTN_SM90=0 turns it off, for comparisons */
        const char *env = getenv("SRLM_CUDA_ATTN_SM90");
        g_forced_path = env && strcmp(env, "0") == 0 ? SRLM_CUDA_ATTN_FWD_MMA : SRLM_CUDA_ATTN_FWD_AUTO;
    }
    if (g_forced_path == SRLM_CUDA_ATTN_FWD_MMA) return false;
    return device_has_sm90_image() != 0;
}

srlm_status attn::launch_fwd_sm90(const Params &p, cudaStream_t stream) {
    return p.hd == 64 ? launch<64>(p, stream) : launch<128>(p, stream);
}
