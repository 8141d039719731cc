/* Attention backward on Hopper's wgmma (sm_90a): attention_bwd_mma.cu's
 * algorithm, grids, GQA head split, partials and outputs, with every product
 * issued by a warpgroup over 64 rows (attention_sm90.cuh):
 *   dkdv_sm90_kernel: one warpgroup, 64 keys of one (sequence, kv head), K and
 *     V in shared memory for the whole run; steps of 64 query rows (Q, dO
 *     double-buffered) over the group's query heads:
 *       S^T = K Q^T and dP^T = V dO^T     wgmma m64n64k16, all from shared memory
 *       P^T, dS^T = P^T (dP^T - D)        registers, the mma kernel's code
 *       dV += P^T dO, dK += dS^T Q        wgmma m64nHDk16, P^T / dS^T from
 *                                         registers, dO / Q read N-major
 *   dq_sm90_kernel: two warpgroups, 128 query rows of one (sequence, head),
 *     taking turns to issue S and dP as the forward's do; steps of 64 keys
 *     (K, V double-buffered):
 *       S = Q K^T, dP = dO V^T (shared memory), P, dS, dQ += dS K (K N-major).
 * A warp's accumulator rows are the mma kernels' (16 keys, or 16 query rows,
 * per warp), so the masks and the softmax gradient are theirs. No atomics,
 * every sum in a fixed order. ptxas (CUDA 13.0, registers at head dim 64 /
 * 128, no spills): dkdv 203 / 255 (2 blocks an SM), dq 139 / 167 (1 block), dq
 * overlapping its products 152 / 183.
 * Written without a GPU at hand:
 * test_attention_gpu checks it against the CPU twin (and the mma kernels,
 * forced) on an H100; bench_kernels times both. */
#include "attention_bwd_mma.cuh"
#include "attention_sm90.cuh"

using namespace attn;
using namespace attn::sm90;

namespace {

constexpr int kKvThreads = 128; /* dkdv: one warpgroup, 16 keys a warp */
constexpr int kKvTile = 64;     /* keys per dkdv block (attention_bwd_mma.cu's kTile: the same split) */
constexpr int kKvStep = 64;     /* query rows per dkdv step */
constexpr int kDqThreads = 256; /* dq: two warpgroups */
constexpr int kDqRows = 128;    /* query rows per dq block */
constexpr int kDqStep = 64;     /* keys per dq step */

/* dkdv: K, V (kKvTile rows), two buffers of (Q, dO) (kKvStep rows), then two
 * buffers of (lse2, D) floats and two of the rows' first keys. */
template <int HD> struct KvLayout {
    static constexpr uint32_t kKBytes = kKvTile * HD * 2, kQBytes = kKvStep * HD * 2;
    static constexpr uint32_t kStat = 2 * kKBytes + 4 * kQBytes; /* offset of the floats */
    static constexpr size_t kSmem = kStat + 4 * kKvStep * sizeof(float) + 2 * kKvStep * sizeof(int) + 1024;
};

/* dq: Q, dO (kDqRows rows), two buffers of (K, V) (kDqStep rows), the rows'
 * first keys. */
template <int HD> struct DqLayout {
    static constexpr uint32_t kQBytes = kDqRows * HD * 2, kKBytes = kDqStep * HD * 2;
    static constexpr uint32_t kFirst = 2 * kQBytes + 4 * kKBytes;
    static constexpr size_t kSmem = kFirst + kDqRows * sizeof(int) + 1024;
    /* dq_sm90_overlap_kernel: three buffers of (K, V) */
    static constexpr uint32_t kFirst3 = 2 * kQBytes + 6 * kKBytes;
    static constexpr size_t kSmem3 = kFirst3 + kDqRows * sizeof(int) + 1024;
};

/* split == 1: dk, dv written directly; split > 1: blockIdx.y is kv head *
 * split + part, the block walks group / split query heads and writes fp32
 * partials (launch_bwd_mma's layout). */
template <int HD>
__global__ void __launch_bounds__(kKvThreads, 2) /* two blocks an SM: at most 255 registers a thread */
    dkdv_sm90_kernel(Params p, int split, float *part_k, float *part_v, __nv_bfloat16 *dk, int64_t lddk,
                     __nv_bfloat16 *dv, int64_t lddv) {
    using L = KvLayout<HD>;
    constexpr int BQ = kKvStep;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    unsigned char *gen;
    const uint32_t ks = aligned_base(smem_raw, &gen), vs = ks + L::kKBytes;
    const uint32_t qbuf = vs + L::kKBytes;                     /* buffer i: Q at i * 2 tiles, dO after it */
    float *stat = reinterpret_cast<float *>(gen + L::kStat);   /* buffer i: lse2 at i * 2 * BQ, D after it */
    int *first_key = reinterpret_cast<int *>(stat + 4 * BQ);   /* buffer i: at i * BQ */

    const int b = blockIdx.z, kvh = blockIdx.y / split, part = blockIdx.y % split, k0 = blockIdx.x * kKvTile;
    const int heads = p.group / split, h0 = kvh * p.group + part * heads;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, tig = lane % 4;
    const int n_past = p.n_past[b], n_new = p.n_new[b], kv_end = n_past + n_new;
    const __nv_bfloat16 *q = (const __nv_bfloat16 *)p.q, *k = (const __nv_bfloat16 *)p.k,
                        *v = (const __nv_bfloat16 *)p.v, *dout = (const __nv_bfloat16 *)p.dout;
    const int64_t kbase = cache_row(p, b, 0);

    /* the query rows that see any key of the block (attention_bwd_mma.cu) */
    int tq_first, nqt;
    dkdv_row_tiles(p, k0, kKvTile, BQ, n_past, n_new, &tq_first, &nqt);
    const int nsteps = heads * nqt;

    auto issue = [&](int i, int buf) {
        const int h = h0 + i / nqt, tq0 = tq_first + (i % nqt) * BQ;
        const int nq = min(BQ, n_new - tq0);
        const int64_t row0 = (int64_t)b * p.T + tq0;
        const uint32_t qd = qbuf + buf * 2 * L::kQBytes;
        load_sw128<HD, kKvThreads>(qd, q + row0 * p.ldq + (int64_t)h * HD, p.ldq, BQ, nq);
        load_sw128<HD, kKvThreads>(qd + L::kQBytes, dout + row0 * p.lddo + (int64_t)h * HD, p.lddo, BQ, nq);
        load_row_stats(p, stat + buf * 2 * BQ, first_key + buf * BQ, BQ, kKvThreads, row0, tq0, nq, h);
    };

    float dka[HD / 8][4], dva[HD / 8][4];
#pragma unroll
    for (int i = 0; i < HD / 8; i++)
#pragma unroll
        for (int e = 0; e < 4; e++) dka[i][e] = dva[i][e] = 0.0f;

    if (nsteps > 0) { /* K and V once, with the first query tile */
        const int nk = min(kKvTile, kv_end - k0);
        load_sw128<HD, kKvThreads>(ks, k + (kbase + k0) * p.ldk + (int64_t)kvh * HD, p.ldk, kKvTile, nk);
        load_sw128<HD, kKvThreads>(vs, v + (kbase + k0) * p.ldv + (int64_t)kvh * HD, p.ldv, kKvTile, nk);
        issue(0, 0);
    }
    cp_async_commit();
    const int wkey0 = k0 + warp * 16; /* this warp's first key */
    const int key_a = wkey0 + g, key_b = key_a + 8;
    for (int i = 0, buf = 0; i < nsteps; i++, buf ^= 1) {
        if (i + 1 < nsteps) issue(i + 1, buf ^ 1);
        cp_async_commit();
        cp_async_wait_one();
        fence_proxy_async();
        __syncthreads();
        const int tq0 = tq_first + (i % nqt) * BQ;
        const uint32_t qs = qbuf + buf * 2 * L::kQBytes, dos = qs + L::kQBytes;
        const float *ls = stat + buf * 2 * BQ, *dd = ls + BQ;
        const int *fk = first_key + buf * BQ;
        const int nq = min(BQ, n_new - tq0);
        /* else every key of the block is after the step's last real row, or
         * (packed sequences) before its first row's sequence; uniform */
        if (k0 <= n_past + tq0 + nq - 1 && k0 + kKvTile - 1 >= fk[0]) {
            float pt[BQ / 8][4], dst[BQ / 8][4];
            wgmma_fence();
#pragma unroll
            for (int kk = 0; kk < HD / 16; kk++)
                wgmma_ss_n64(pt, desc_k_major(ks, kKvTile, 0, kk), desc_k_major(qs, BQ, 0, kk), kk > 0);
#pragma unroll
            for (int kk = 0; kk < HD / 16; kk++)
                wgmma_ss_n64(dst, desc_k_major(vs, kKvTile, 0, kk), desc_k_major(dos, BQ, 0, kk), kk > 0);
            wgmma_commit();
            wgmma_wait_all();
            fence_regs(pt);
            fence_regs(dst);
            /* P^T (key, query t): fk[t] <= key <= n_past + t and t real; no
             * mask when every row is real and sees all of the warp's keys */
            const bool masked = tq0 + BQ > n_new || wkey0 + 15 > n_past + tq0 || wkey0 < fk[nq - 1];
#pragma unroll
            for (int nt = 0; nt < BQ / 8; nt++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const int col = nt * 8 + 2 * tig + (e & 1), t = tq0 + col;
                    const int key = e < 2 ? key_a : key_b;
                    const bool vis = t < n_new && key <= n_past + t && key >= fk[col];
                    const float x = exp2_ftz(fmaf(pt[nt][e], p.scale_log2, -ls[col]));
                    pt[nt][e] = masked && !vis ? 0.0f : x;
                    dst[nt][e] = pt[nt][e] * (dst[nt][e] - dd[col]);
                }
            uint32_t pa[BQ / 16][4], sa[BQ / 16][4];
            pack_a<BQ>(pa, pt);
            pack_a<BQ>(sa, dst);
            fence_regs(pa);
            fence_regs(sa);
            fence_regs(dva);
            fence_regs(dka);
            wgmma_fence();
#pragma unroll
            for (int kc = 0; kc < BQ / 16; kc++) wgmma_rs<HD>(dva, pa[kc], desc_n_major(dos, BQ, kc));
#pragma unroll
            for (int kc = 0; kc < BQ / 16; kc++) wgmma_rs<HD>(dka, sa[kc], desc_n_major(qs, BQ, kc));
            wgmma_commit();
            wgmma_wait_all();
            fence_regs(dva);
            fence_regs(dka);
        }
        __syncthreads(); /* everyone is done with buf before the next step refills it */
    }

    /* every row of the slot is written: rows past n_past + n_new get zeros */
    const float scale = p.scale_log2 / kLog2e;
    const int nrows = p.max_seq - k0;
    if (split == 1) {
        store_rows<HD>(dk, lddk, kbase + wkey0, kvh * HD, warp * 16, nrows, nrows, dka, scale);
        store_rows<HD>(dv, lddv, kbase + wkey0, kvh * HD, warp * 16, nrows, nrows, dva, 1.0f);
    } else {
        const int64_t ld = (int64_t)p.nkv * HD, row0 = ((int64_t)part * p.B + b) * p.max_seq + wkey0;
        store_part<HD>(part_k, ld, row0, kvh * HD, warp * 16, nrows, dka);
        store_part<HD>(part_v, ld, row0, kvh * HD, warp * 16, nrows, dva);
    }
}

/* One dq thread's place and its rows' statistics (both dq kernels'). */
struct DqRows {
    int b, h, t0, wg, w0, g, tig, n_new, n_past, kvh, kv_end, k_begin;
    int lim[2];            /* this lane's rows w0 + g and + 8 see keys first_key[row - t0] <= key < lim */
    float lse2[2], dd[2];  /* their lse (log2 domain) and D */
    int warp_full;         /* keys below it every row of the warp sees */
    int wr_first, wr_last; /* block rows (into first_key) of the warp's first and last real rows */
    int64_t kbase;
};

__device__ __forceinline__ DqRows dq_rows(const Params &p) {
    DqRows r;
    /* the last query tiles see the most keys: start them first */
    r.b = blockIdx.z, r.h = blockIdx.y, r.t0 = (gridDim.x - 1 - blockIdx.x) * kDqRows;
    r.wg = threadIdx.x / 128;
    const int warp = (threadIdx.x / 32) % 4, lane = threadIdx.x % 32;
    r.g = lane / 4, r.tig = lane % 4;
    r.n_past = p.n_past[r.b], r.n_new = p.n_new[r.b], r.kvh = r.h / p.group;
    r.kv_end = r.t0 < r.n_new ? r.n_past + min(r.t0 + kDqRows, r.n_new) : 0;
    r.k_begin = r.kv_end > 0 ? key_lo(p, r.t0) / kDqStep * kDqStep : 0;
    /* the warpgroup's rows from t0 + 64 wg, the warp's from w0 */
    r.w0 = r.t0 + 64 * r.wg + 16 * warp;
#pragma unroll
    for (int i = 0; i < 2; i++) {
        const int t = r.w0 + r.g + 8 * i;
        const int64_t row = (int64_t)r.b * p.T + t;
        r.lim[i] = t < r.n_new ? r.n_past + t + 1 : 0;
        r.lse2[i] = t < r.n_new ? p.lse[row * p.nh + r.h] * kLog2e : 0.0f;
        r.dd[i] = t < r.n_new ? p.dvec[row * p.nh + r.h] : 0.0f;
    }
    r.warp_full = r.w0 + 16 <= r.n_new ? r.n_past + r.w0 + 1 : 0;
    r.wr_first = 64 * r.wg + 16 * warp, r.wr_last = r.wr_first + max(0, min(16, r.n_new - r.w0) - 1);
    r.kbase = cache_row(p, r.b, 0);
    return r;
}

/* The rows' first keys into first_key (read after the next __syncthreads),
 * and, when the block has keys, its Q and dO rows by cp.async (uncommitted). */
template <int HD>
__device__ __forceinline__ void dq_load_rows(const Params &p, const DqRows &r, uint32_t q_s, uint32_t do_s,
                                             int *first_key) {
    for (int i = threadIdx.x; i < kDqRows; i += kDqThreads) first_key[i] = r.t0 + i < r.n_new ? key_lo(p, r.t0 + i) : 0;
    if (r.kv_end == 0) return;
    const int64_t row0 = (int64_t)r.b * p.T + r.t0;
    const int nq = min(kDqRows, r.n_new - r.t0);
    load_sw128<HD, kDqThreads>(q_s, (const __nv_bfloat16 *)p.q + row0 * p.ldq + (int64_t)r.h * HD, p.ldq, kDqRows, nq);
    load_sw128<HD, kDqThreads>(do_s, (const __nv_bfloat16 *)p.dout + row0 * p.lddo + (int64_t)r.h * HD, p.lddo,
                               kDqRows, nq);
}

/* The K and V tiles of keys k0 .. k0 + 63 into kd and kd + one tile (uncommitted). */
template <int HD>
__device__ __forceinline__ void dq_load_kv(const Params &p, const DqRows &r, int k0, uint32_t kd) {
    const int nk = min(kDqStep, r.kv_end - k0);
    const __nv_bfloat16 *k = (const __nv_bfloat16 *)p.k, *v = (const __nv_bfloat16 *)p.v;
    load_sw128<HD, kDqThreads>(kd, k + (r.kbase + k0) * p.ldk + (int64_t)r.kvh * HD, p.ldk, kDqStep, nk);
    load_sw128<HD, kDqThreads>(kd + DqLayout<HD>::kKBytes, v + (r.kbase + k0) * p.ldv + (int64_t)r.kvh * HD, p.ldv,
                               kDqStep, nk);
}

/* S = Q K^T and dP = dO V^T of this warpgroup's 64 rows, issued (not waited for). */
template <int HD>
__device__ __forceinline__ void dq_issue_scores(float (&pr)[kDqStep / 8][4], float (&ds)[kDqStep / 8][4],
                                                uint32_t q_s, uint32_t do_s, int wg, uint32_t ks, uint32_t vs) {
#pragma unroll
    for (int kk = 0; kk < HD / 16; kk++)
        wgmma_ss_n64(pr, desc_k_major(q_s, kDqRows, 64 * wg, kk), desc_k_major(ks, kDqStep, 0, kk), kk > 0);
#pragma unroll
    for (int kk = 0; kk < HD / 16; kk++)
        wgmma_ss_n64(ds, desc_k_major(do_s, kDqRows, 64 * wg, kk), desc_k_major(vs, kDqStep, 0, kk), kk > 0);
}

/* dS = P (dP - D) in place of dP, P = exp2(S scale - lse) with the masks. */
__device__ __forceinline__ void dq_grad_scores(const Params &p, const DqRows &r, const int *first_key, int k0,
                                               const float (&pr)[kDqStep / 8][4], float (&ds)[kDqStep / 8][4]) {
    const bool masked = k0 + kDqStep > r.warp_full || k0 < first_key[r.wr_last];
#pragma unroll
    for (int nt = 0; nt < kDqStep / 8; nt++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const int key = k0 + nt * 8 + 2 * r.tig + (e & 1);
            const float x = exp2_ftz(fmaf(pr[nt][e], p.scale_log2, -r.lse2[e / 2]));
            const int row = r.wr_first + r.g + 8 * (e / 2); /* of the block */
            const float pv = masked && (key >= r.lim[e / 2] || key < first_key[row]) ? 0.0f : x;
            ds[nt][e] = pv * (ds[nt][e] - r.dd[e / 2]);
        }
}

/* dQ += dS K, K read N-major, issued (not waited for). */
template <int HD>
__device__ __forceinline__ void dq_issue_acc(float (&acc)[HD / 8][4], const uint32_t (&sa)[kDqStep / 16][4],
                                             uint32_t ks) {
#pragma unroll
    for (int kc = 0; kc < kDqStep / 16; kc++) wgmma_rs<HD>(acc, sa[kc], desc_n_major(ks, kDqStep, kc));
}

template <int HD, bool PINGPONG>
__global__ void __launch_bounds__(kDqThreads, 1) dq_sm90_kernel(Params p, __nv_bfloat16 *dq, int64_t lddq) {
    using L = DqLayout<HD>;
    constexpr int BK = kDqStep;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    unsigned char *gen;
    const uint32_t q_s = aligned_base(smem_raw, &gen), do_s = q_s + L::kQBytes;
    const uint32_t kv_s = do_s + L::kQBytes; /* buffer i: K at i * 2 tiles, V after it */
    int *first_key = reinterpret_cast<int *>(gen + L::kFirst);
    const DqRows r = dq_rows(p);
    const int wg = r.wg;

    float acc[HD / 8][4];
#pragma unroll
    for (int i = 0; i < HD / 8; i++) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.0f;
    dq_load_rows<HD>(p, r, q_s, do_s, first_key); /* Q and dO once, with the first key tile */
    if (r.kv_end > 0) dq_load_kv<HD>(p, r, r.k_begin, kv_s);
    cp_async_commit();
    if (PINGPONG && wg == 1) named_bar_arrive(1, kDqThreads); /* warpgroup 0 goes first (the forward's turns) */
    for (int k0 = r.k_begin, buf = 0; k0 < r.kv_end; k0 += BK, buf ^= 1) {
        if (k0 + BK < r.kv_end) dq_load_kv<HD>(p, r, k0 + BK, kv_s + (buf ^ 1) * 2 * L::kKBytes);
        cp_async_commit();
        cp_async_wait_one();
        fence_proxy_async();
        __syncthreads();
        const uint32_t ks = kv_s + buf * 2 * L::kKBytes, vs = ks + L::kKBytes;
        /* every warpgroup runs every tile, also one none of its rows see
         * (masked whole, no effect; a branch around the products would make
         * ptxas serialize them); ping-pong as the forward's */
        float pr[BK / 8][4], ds[BK / 8][4];
        if (PINGPONG) pingpong_wait(wg, kDqThreads);
        wgmma_fence();
        dq_issue_scores<HD>(pr, ds, q_s, do_s, wg, ks, vs);
        wgmma_commit();
        wgmma_wait_all();
        fence_regs(pr);
        fence_regs(ds);
        if (PINGPONG) pingpong_pass(wg, kDqThreads);
        dq_grad_scores(p, r, first_key, k0, pr, ds);
        uint32_t sa[BK / 16][4];
        pack_a<BK>(sa, ds);
        fence_regs(sa);
        fence_regs(acc);
        wgmma_fence();
        dq_issue_acc<HD>(acc, sa, ks);
        wgmma_commit();
        wgmma_wait_all();
        fence_regs(acc);
        __syncthreads(); /* everyone is done with buf before the next step refills it */
    }

    if (PINGPONG && wg == 0) named_bar_sync(1, kDqThreads);

    /* rows t < T are written, padding rows (t >= n_new) as zeros */
    store_rows<HD>(dq, lddq, (int64_t)r.b * p.T + r.w0, r.h * HD, r.w0, p.T, r.n_new, acc, p.scale_log2 / kLog2e);
}

/* The same dQ with each key tile's S and dP overlapping the last tile's
 * dQ += dS K (the forward's overlap; no running max here, so nothing to
 * rescale): three K/V buffers, K_(j-1) read while tile j is used and tile
 * j + 1 streams in. Same sums in the same order as dq_sm90_kernel. */
template <int HD, bool PINGPONG>
__global__ void __launch_bounds__(kDqThreads, 1)
    dq_sm90_overlap_kernel(Params p, __nv_bfloat16 *dq, int64_t lddq) {
    using L = DqLayout<HD>;
    constexpr int BK = kDqStep;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    unsigned char *gen;
    const uint32_t q_s = aligned_base(smem_raw, &gen), do_s = q_s + L::kQBytes;
    const uint32_t kv_s = do_s + L::kQBytes; /* buffer i: K at i * 2 tiles, V after it */
    int *first_key = reinterpret_cast<int *>(gen + L::kFirst3);
    const DqRows r = dq_rows(p);
    const int wg = r.wg;
    const int n_tiles = r.kv_end > 0 ? (r.kv_end - r.k_begin + BK - 1) / BK : 0;
    auto kbuf = [&](int j) { return kv_s + (uint32_t)(j % 3) * 2 * L::kKBytes; };

    float acc[HD / 8][4];
#pragma unroll
    for (int i = 0; i < HD / 8; i++) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.0f;
    dq_load_rows<HD>(p, r, q_s, do_s, first_key);
    if (n_tiles > 0) dq_load_kv<HD>(p, r, r.k_begin, kbuf(0));
    cp_async_commit();
    if (n_tiles > 1) dq_load_kv<HD>(p, r, r.k_begin + BK, kbuf(1));
    cp_async_commit();
    uint32_t sa[BK / 16][4]; /* the last tile's dS, packed as the A operand */
    if (PINGPONG && wg == 1) named_bar_arrive(1, kDqThreads);
    if (n_tiles > 0) { /* tile 0: its S and dP alone */
        cp_async_wait_one();
        fence_proxy_async();
        __syncthreads();
        float pr[BK / 8][4], ds[BK / 8][4];
        if (PINGPONG) pingpong_wait(wg, kDqThreads);
        wgmma_fence();
        dq_issue_scores<HD>(pr, ds, q_s, do_s, wg, kbuf(0), kbuf(0) + L::kKBytes);
        wgmma_commit();
        wgmma_wait_all();
        fence_regs(pr);
        fence_regs(ds);
        if (PINGPONG) pingpong_pass(wg, kDqThreads);
        dq_grad_scores(p, r, first_key, r.k_begin, pr, ds);
        pack_a<BK>(sa, ds);
    }
    for (int j = 1; j < n_tiles; j++) {
        const int k0 = r.k_begin + j * BK;
        /* buffer (j + 1) % 3 held tile j - 2, done with at step j - 1's end */
        if (j + 1 < n_tiles) dq_load_kv<HD>(p, r, k0 + BK, kbuf(j + 1));
        cp_async_commit();
        cp_async_wait_one();
        fence_proxy_async();
        __syncthreads();
        float pr[BK / 8][4], ds[BK / 8][4];
        if (PINGPONG) pingpong_wait(wg, kDqThreads);
        fence_regs(sa);
        fence_regs(acc);
        wgmma_fence();
        dq_issue_scores<HD>(pr, ds, q_s, do_s, wg, kbuf(j), kbuf(j) + L::kKBytes);
        wgmma_commit();
        dq_issue_acc<HD>(acc, sa, kbuf(j - 1));
        wgmma_commit();
        wgmma_wait_one(); /* S_j and dP_j: dS_(j-1) K_(j-1) may still run */
        fence_regs(pr);
        fence_regs(ds);
        if (PINGPONG) pingpong_pass(wg, kDqThreads);
        dq_grad_scores(p, r, first_key, k0, pr, ds);
        wgmma_wait_all();
        fence_regs(acc);
        fence_regs(sa);
        pack_a<BK>(sa, ds);
        __syncthreads(); /* everyone is done with buffer j - 1 before the next step refills it */
    }
    if (n_tiles > 0) { /* the last tile's dS K */
        fence_regs(sa);
        fence_regs(acc);
        wgmma_fence();
        dq_issue_acc<HD>(acc, sa, kbuf(n_tiles - 1));
        wgmma_commit();
        wgmma_wait_all();
        fence_regs(acc);
    }

    if (PINGPONG && wg == 0) named_bar_sync(1, kDqThreads);

    store_rows<HD>(dq, lddq, (int64_t)r.b * p.T + r.w0, r.h * HD, r.w0, p.T, r.n_new, acc, p.scale_log2 / kLog2e);
}

template <int HD>
srlm_status launch(const Params &p, srlm_view *dq, srlm_view *dk, srlm_view *dv, int split, void *part,
                   cudaStream_t stream) {
    const bool overlap = sm90_overlap(), pingpong = sm90_pingpong();
    const size_t smem_kv = KvLayout<HD>::kSmem, smem_q = overlap ? DqLayout<HD>::kSmem3 : DqLayout<HD>::kSmem;
    SRLM_CUDA_TRY(
        cudaFuncSetAttribute(dkdv_sm90_kernel<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem_kv));
    auto dq_kernel = overlap ? (pingpong ? dq_sm90_overlap_kernel<HD, true> : dq_sm90_overlap_kernel<HD, false>)
                             : (pingpong ? dq_sm90_kernel<HD, true> : dq_sm90_kernel<HD, false>);
    SRLM_CUDA_TRY(cudaFuncSetAttribute(dq_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem_q));
    if (!part || split < 1 || p.group % split != 0) split = 1;
    const int64_t per_part = (int64_t)p.B * p.max_seq * p.nkv * HD; /* floats of one part's dK (or dV) */
    float *part_k = split > 1 ? (float *)part : NULL, *part_v = split > 1 ? part_k + split * per_part : NULL;
    dim3 grid_kv((p.max_seq + kKvTile - 1) / kKvTile, p.nkv * split, p.B);
    dkdv_sm90_kernel<HD><<<grid_kv, kKvThreads, smem_kv, stream>>>(p, split, part_k, part_v,
                                                                   (__nv_bfloat16 *)dk->data, dk->stride,
                                                                   (__nv_bfloat16 *)dv->data, dv->stride);
    SRLM_CUDA_TRY(cudaGetLastError());
    if (split > 1) SRLM_CHECK(launch_dkdv_reduce(p, split, part_k, part_v, dk, dv, stream));
    if (p.T == 0) return SRLM_OK; /* no query rows: dk, dv are all zeros */
    dim3 grid_q((p.T + kDqRows - 1) / kDqRows, p.nh, p.B);
    dq_kernel<<<grid_q, kDqThreads, smem_q, stream>>>(p, (__nv_bfloat16 *)dq->data, dq->stride);
    SRLM_CUDA_TRY(cudaGetLastError());
    return SRLM_OK;
}

}  // namespace

srlm_status attn::launch_bwd_sm90(const Params &p, srlm_view *dq, srlm_view *dk, srlm_view *dv, int split,
                                  void *part, cudaStream_t stream) {
    return p.hd == 64 ? launch<64>(p, dq, dk, dv, split, part, stream)
                      : launch<128>(p, dq, dk, dv, split, part, stream);
}

size_t attn::sm90::bwd_smem_max() {
    return max(max(KvLayout<64>::kSmem, KvLayout<128>::kSmem), max(DqLayout<64>::kSmem3, DqLayout<128>::kSmem3));
}
