/* Hopper's warpgroup tensor-core instructions (wgmma, sm_90a) for the
 * attention kernels built for that target alone (attention_sm90.cu,
 * attention_bwd_sm90.cu): the instruction wrappers, their fences, and the
 * loads of bf16 tiles of head rows into the 128-byte-swizzled shared-memory
 * layout the instructions read (attention_sm90_layout.h; PTX ISA:
 * "Asynchronous Warpgroup Level Matrix Multiply-Accumulate Instructions").
 * Accumulators: warp w of a warpgroup holds rows 16w .. 16w + 15 of the
 * 64-row product, laid out as mma.sync's m16n8 tiles (element e of n-tile nt:
 * row g or g + 8, column nt*8 + 2*tig + (e & 1)); a register A operand is
 * mma.sync's m16n8k16 A fragment. So the mma kernels' softmax and re-packing
 * code applies unchanged. */
#pragma once

#include "attention_sm90_layout.h"
#include "attention_tiles.cuh"

namespace attn {
namespace sm90 {

/* ---- wgmma and its fences (PTX ISA: "Asynchronous Warpgroup Level Matrix
 * Multiply-Accumulate Instructions") ---- */

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_wait_all() { asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory"); }
/* all but the last committed group */
__device__ __forceinline__ void wgmma_wait_one() { asm volatile("wgmma.wait_group.sync.aligned 1;\n" ::: "memory"); }
/* shared memory written by this thread's cp.async or plain stores becomes
 * visible to the tensor cores' (async proxy) reads after the next barrier */
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

/* Pins registers for the compiler: no code that reads or writes them moves
 * across this point. To the compiler a product's asm statement returns its
 * accumulators (and is done with a register A operand) at once, so it may
 * legally move their plain reads above the wait, or their writes below the
 * fence; the hardware reads and writes them until wgmma.wait_group. Used
 * before each wgmma.fence (the A operands and accumulators the products take)
 * and after each wait (the accumulators they return). */
template <int N> __device__ __forceinline__ void fence_regs(float (&x)[N][4]) {
#pragma unroll
    for (int i = 0; i < N; i++)
#pragma unroll
        for (int e = 0; e < 4; e++) asm volatile("" : "+f"(x[i][e])::"memory");
}
template <int N> __device__ __forceinline__ void fence_regs(uint32_t (&x)[N][4]) {
#pragma unroll
    for (int i = 0; i < N; i++)
#pragma unroll
        for (int e = 0; e < 4; e++) asm volatile("" : "+r"(x[i][e])::"memory");
}

/* Named barriers (0 is __syncthreads'): `threads` of the block, a multiple
 * of 32, meet at barrier id; arrive does not wait. The kernels with two
 * warpgroups use ids 1 and 2 to order their products' issue (ping-pong). */
__device__ __forceinline__ void named_bar_sync(int id, int threads) {
    asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}
__device__ __forceinline__ void named_bar_arrive(int id, int threads) {
    asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

/* The dynamic shared memory's first 1024-byte aligned address (the kernels
 * ask for 1024 bytes more than their tiles), as a shared-state address and,
 * in *generic, as a pointer for ordinary loads and stores. */
__device__ __forceinline__ uint32_t aligned_base(const unsigned char *smem, unsigned char **generic) {
    const uint32_t raw = (uint32_t)__cvta_generic_to_shared(smem), base = (raw + 1023u) & ~1023u;
    *generic = const_cast<unsigned char *>(smem) + (base - raw);
    return base;
}

/* Bytes of dynamic shared memory the largest backward kernel asks for
 * (attention_bwd_sm90.cu), for the forward's check that the device gives it. */
size_t bwd_smem_max();

/* Turns of two warpgroups (ping-pong): warpgroup wg waits at barrier 1 + wg
 * for its turn, and after its products passes the turn to the other one.
 * Constant barrier ids (a computed one makes ptxas reserve all 16), and
 * neither call between a product group's issue and the wait for that group
 * (ptxas then serializes the products; passing the turn while an earlier
 * group still runs, as the overlapping kernels do, it accepts). */
__device__ __forceinline__ void pingpong_wait(int wg, int threads) {
    if (wg == 0) named_bar_sync(1, threads);
    else named_bar_sync(2, threads);
}
__device__ __forceinline__ void pingpong_pass(int wg, int threads) {
    if (wg == 0) named_bar_arrive(2, threads);
    else named_bar_arrive(1, threads);
}

/* x (16 x N per warp, accumulator layout) as bf16 A fragments of the N / 16
 * steps of a product that takes it as A (mma.sync's packing). */
template <int N>
__device__ __forceinline__ void pack_a(uint32_t (&a)[N / 16][4], const float (&x)[N / 8][4]) {
#pragma unroll
    for (int kc = 0; kc < N / 16; kc++) {
        a[kc][0] = pack_bf16(x[2 * kc][0], x[2 * kc][1]);
        a[kc][1] = pack_bf16(x[2 * kc][2], x[2 * kc][3]);
        a[kc][2] = pack_bf16(x[2 * kc + 1][0], x[2 * kc + 1][1]);
        a[kc][3] = pack_bf16(x[2 * kc + 1][2], x[2 * kc + 1][3]);
    }
}

/* Ping-pong of the two-warpgroup kernels (attention_sm90.cu): on unless
 * srlm_cuda_attention_sm90_pingpong(0) or SRLM_CUDA_ATTN_PINGPONG=0. */
bool sm90_pingpong();
/* The forward's and dq's overlap of each tile's scores with the last tile's
 * product: off unless srlm_cuda_attention_sm90_overlap(1) or
 * SRLM_CUDA_ATTN_OVERLAP=1 (not yet run on a GPU). */
bool sm90_overlap();

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

__device__ __forceinline__ uint64_t desc_k_major(uint32_t tile, int rows, int row0, int kk) {
    return srlm_sw128_desc_k_major(tile, rows, row0, kk);
}
__device__ __forceinline__ uint64_t desc_n_major(uint32_t tile, int rows, int kk) {
    return srlm_sw128_desc_n_major(tile, rows, kk);
}

/* `rows` rows of HD bf16 (row r at src + r * ld) into the swizzled tile at
 * shared address dst by cp.async, 16 bytes a copy; rows >= valid zeroed (the
 * cache past the end may hold NaN, and 0 * NaN would poison the products). */
template <int HD, int THREADS>
__device__ __forceinline__ void load_sw128(uint32_t dst, const __nv_bfloat16 *src, int64_t ld, int rows, int valid) {
    constexpr int kVec = HD / 8;
    for (int i = threadIdx.x; i < rows * kVec; i += THREADS) {
        const int r = i / kVec, c = i % kVec;
        const uint32_t a = dst + srlm_sw128_offset(rows, r, c);
        if (r < valid)
            asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(a),
                         "l"(__cvta_generic_to_global(src + r * ld + c * 8))
                         : "memory");
        else
            asm volatile("st.shared.v4.u32 [%0], {%1, %1, %1, %1};\n" ::"r"(a), "r"(0) : "memory");
    }
}

}  // namespace sm90
}  // namespace attn
