/* Attention backward on the tensor cores (bf16, head_dim 64 or 128), the
 * FlashAttention-2 algorithm in the scalar path's deterministic 3-kernel form
 * (attention_bwd.cu has lse and D first, from the forward's saved out and lse
 * or a statistics pass, then runs these two):
 *   dkdv_mma_kernel: a block owns 64 keys of one (sequence, kv head), K and V
 *     in shared memory for the whole run; it walks the query tiles of every
 *     query head of the GQA group (or of its share of them, below) in a fixed
 *     order (head, then rows):
 *       S^T = K Q^T, P^T = exp2(S^T scale_log2 - lse2), dP^T = V dO^T,
 *       dS^T = P^T (dP^T - D), dV += P^T dO, dK += dS^T Q (scaled at the end)
 *   dq_mma_kernel: a block owns 128 query rows of one (sequence, head) and walks
 *     the key tiles: S = Q K^T, P, dP = dO V^T, dS, dQ += dS K.
 * A dkdv warp owns 16 keys (the mma's M), a dq warp 32 query rows as two m16
 * tiles (each K/V fragment then feeds both, as in the forward); every product is
 * mma.sync m16n8k16 bf16 with fp32 accumulators, the operands read from shared
 * memory by ldmatrix exactly as fwd_mma_kernel (attention.cu) does; P and dS
 * are re-packed from accumulators to bf16 A fragments as the forward does with
 * P. The streamed tiles (Q/dO, or K/V) are double-buffered with cp.async.
 * dK, dV, dQ stay in fp32 registers and are written once. No atomics and every
 * sum in a fixed order, so the result is the same on every run.
 *
 * GQA: one dkdv block per (key tile, kv head, sequence) walks all `group`
 * query heads, so the 1.1B shape (4 x 1024 tokens, 4 kv heads) has 256 blocks:
 * one wave, where the causal tiles' work runs from 128 steps (the first key
 * tile) down to 8, so the wave lasts about twice its average block (0.54x
 * flash at hd 64 against 0.61-0.94x for MHA). Where one block per group gives
 * under ~4 waves, the group's heads are split over `split` blocks (a divisor
 * of group); each writes its fp32 partial dK, dV to the workspace, and
 * dkdv_reduce_kernel adds the partials in a fixed order and rounds once
 * (the sums' order differs from split 1's: rounding, not a different result;
 * reruns on one device are bit-identical, but the split, hence the last bits,
 * depends on the shape and the device's multiprocessor count).
 * Expected, not yet run: the 1.1B shape's backward from 0.54x towards ~0.75x
 * flash (dkdv is ~70% of it at half efficiency; the partials add ~138 MB of
 * traffic, written and read again, ~45 us).
 *
 * Expected speed: the scalar kernels ran 5.6-6.7 TFLOP/s (H100, bf16, hd 128,
 * causal, bench_kernels' 2.5x-forward FLOP count): one fp32 FMA per shared
 * memory load, no tensor cores. Here the products run on mma.sync with the
 * forward's ratio of one ldmatrix.x4 per two mma and about the same mma count
 * between barriers (step rows * head_dim = 4096), and that forward runs 44-64
 * TFLOP/s. The backward executes 7 products (dkdv 4, dq 3) plus the
 * statistics forward (2) for the 5 the bench credits, so at the forward's rate
 * it should report ~25-35 TFLOP/s: 4-6x the scalar kernels (the dq kernel's
 * recomputation of S and dP is the price of no atomics). Measured (H100, same
 * bench, 2026-11-26): 72-107 TFLOP/s, 13-16x the scalar kernels and 0.42-0.65x
 * PyTorch's flash backend: better than expected, as the scalar kernels were
 * further from their own bound than the forward is from its. Then 32 rows per
 * dq warp, ex2.ftz and no mask off the diagonal: 0.48-0.73x; and given the
 * forward's saved out and lse (no statistics pass, as the peer runs):
 * 106-152 TFLOP/s, 0.60-0.97x. */
#include "attention_bwd_mma.cuh"

using namespace attn;

namespace {

constexpr int kWarps = 4;
constexpr int kTile = 16 * kWarps; /* keys per dkdv block: 16 per warp */

/* Rows per streamed tile (query rows for dkdv, keys for dq): 64 at hd 64, 32
 * at hd 128, so that the fp32 accumulators fit in registers and the shared
 * memory stays near 100 KB (dq at hd 128: 102.5 KB, above the 99 KB of sm_86 and
 * sm_89 parts, where bwd_mma_eligible sends the scalar kernels instead). */
template <int HD> __host__ __device__ constexpr int step_rows() { return 4096 / HD; }

/* dkdv: K, V (kTile rows), two buffers of (Q, dO) (step rows each), two of
 * (lse2, D), two of the rows' first keys (packed sequences) */
template <int HD> size_t dkdv_smem_bytes() {
    return sizeof(__nv_bfloat16) * (size_t)(2 * kTile + 4 * step_rows<HD>()) * lds<HD>() +
           sizeof(float) * 4 * step_rows<HD>() + sizeof(int) * 2 * step_rows<HD>();
}
/* A dq block owns 128 query rows: each warp two m16 tiles, so every K or V
 * fragment read from shared memory feeds both (as the forward's warps do). */
constexpr int kDqMT = 2;
constexpr int kDqWarpRows = 16 * kDqMT;
constexpr int kDqRows = kDqWarpRows * kWarps;

/* dq: Q, dO (kDqRows rows), two buffers of (K, V) (step rows each), the
 * rows' first keys (packed sequences; in shared memory, as registers for
 * them made the kernel spill) */
template <int HD> size_t dq_smem_bytes() {
    return sizeof(__nv_bfloat16) * (size_t)(2 * kDqRows + 4 * step_rows<HD>()) * lds<HD>() + sizeof(int) * kDqRows;
}

/* split == 1: dk, dv written directly; split > 1: blockIdx.y is kv head *
 * split + part, the block walks group / split query heads, and writes its fp32
 * partials at part_k / part_v + ((part * B + b) * max_seq + key) * nkv * HD. */
template <int HD>
__global__ void __launch_bounds__(kWarps * 32)
    dkdv_mma_kernel(Params p, int split, float *part_k, float *part_v, __nv_bfloat16 *dk, int64_t lddk,
                    __nv_bfloat16 *dv, int64_t lddv) {
    constexpr int LDS = lds<HD>(), BQ = step_rows<HD>();
    extern __shared__ __align__(16) unsigned char smem_raw[];
    __nv_bfloat16 *ks = reinterpret_cast<__nv_bfloat16 *>(smem_raw); /* kTile x LDS */
    __nv_bfloat16 *vs = ks + kTile * LDS;                             /* kTile x LDS */
    __nv_bfloat16 *qbuf = vs + kTile * LDS;      /* buffer i: Q at i * 2 * BQ * LDS, dO after it */
    float *stat = reinterpret_cast<float *>(qbuf + 4 * BQ * LDS); /* buffer i: lse2 at i * 2 * BQ, D after it */
    int *first_key = reinterpret_cast<int *>(stat + 4 * BQ);       /* buffer i: at i * BQ */

    const int b = blockIdx.z, kvh = blockIdx.y / split, part = blockIdx.y % split, k0 = blockIdx.x * kTile;
    const int heads = p.group / split, h0 = kvh * p.group + part * heads; /* this block's query heads */
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, tig = lane % 4;
    const int n_past = p.n_past[b], n_new = p.n_new[b], kv_end = n_past + n_new;
    const __nv_bfloat16 *q = (const __nv_bfloat16 *)p.q, *k = (const __nv_bfloat16 *)p.k,
                        *v = (const __nv_bfloat16 *)p.v, *dout = (const __nv_bfloat16 *)p.dout;
    const int64_t kbase = cache_row(p, b, 0);

    /* query row t sees key j when n_past + t >= j: rows before tq_first see no
     * key of this block; with packed sequences, rows from tq_end on (past the
     * block's last key's sequence) neither. Tiles past kv_end (and padding
     * sequences) have no steps and write zeros. */
    int tq_first, nqt;
    dkdv_row_tiles(p, k0, kTile, BQ, n_past, n_new, &tq_first, &nqt);
    const int nsteps = heads * nqt; /* step i: head h0 + i / nqt, rows tq_first + (i % nqt) * BQ */

    auto issue = [&](int i, int buf) {
        const int h = h0 + i / nqt, tq0 = tq_first + (i % nqt) * BQ;
        const int nq = min(BQ, n_new - tq0);
        const int64_t row0 = (int64_t)b * p.T + tq0;
        __nv_bfloat16 *qd = qbuf + buf * 2 * BQ * LDS;
        load_async<HD>(qd, q + row0 * p.ldq + (int64_t)h * HD, p.ldq, BQ, nq);
        load_async<HD>(qd + BQ * LDS, dout + row0 * p.lddo + (int64_t)h * HD, p.lddo, BQ, nq);
        load_row_stats(p, stat + buf * 2 * BQ, first_key + buf * BQ, BQ, kWarps * 32, row0, tq0, nq, h);
    };

    float dka[HD / 8][4], dva[HD / 8][4];
#pragma unroll
    for (int i = 0; i < HD / 8; i++)
#pragma unroll
        for (int e = 0; e < 4; e++) dka[i][e] = dva[i][e] = 0.0f;

    if (nsteps > 0) { /* K and V once, with the first query tile */
        const int nk = min(kTile, kv_end - k0);
        load_async<HD>(ks, k + (kbase + k0) * p.ldk + (int64_t)kvh * HD, p.ldk, kTile, nk);
        load_async<HD>(vs, v + (kbase + k0) * p.ldv + (int64_t)kvh * HD, p.ldv, kTile, nk);
        issue(0, 0);
    }
    cp_async_commit();
    const int wkey0 = k0 + warp * 16; /* this warp's first key */
    const int key_a = wkey0 + g, key_b = key_a + 8;
    for (int i = 0, buf = 0; i < nsteps; i++, buf ^= 1) {
        /* the next tile into the other buffer (its last readers passed the
         * __syncthreads at the end of the previous step), then wait for this one */
        if (i + 1 < nsteps) issue(i + 1, buf ^ 1);
        cp_async_commit();
        cp_async_wait_one();
        __syncthreads();
        const int tq0 = tq_first + (i % nqt) * BQ;
        const __nv_bfloat16 *qs = qbuf + buf * 2 * BQ * LDS, *dos = qs + BQ * LDS;
        const float *ls = stat + buf * 2 * BQ, *dd = ls + BQ;
        const int *fk = first_key + buf * BQ;
        const int nq = min(BQ, n_new - tq0); /* real rows of the step */
        /* else this warp's keys are all after the step's last real row, or
         * (packed sequences) all before its first row's sequence */
        if (wkey0 <= n_past + tq0 + nq - 1 && wkey0 + 15 >= fk[0]) {
            /* P^T: element (key, query t); fk[t] <= key <= n_past + t and t
             * real, the scalar path's mask (keys past kv_end fail it for every real t) */
            float pt[BQ / 8][4];
            mma_abt<HD, BQ>(pt, ks + warp * 16 * LDS, qs);
            /* no mask when every row of the step is real, sees the warp's last
             * key and (its first key at or after the last row's) its first */
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
                }
            /* dS^T = P^T (dP^T - D); masked entries stay 0 (dP is finite: padding rows and keys are zeros) */
            float dst[BQ / 8][4];
            mma_abt<HD, BQ>(dst, vs + warp * 16 * LDS, dos);
#pragma unroll
            for (int nt = 0; nt < BQ / 8; nt++)
#pragma unroll
                for (int e = 0; e < 4; e++) dst[nt][e] = pt[nt][e] * (dst[nt][e] - dd[nt * 8 + 2 * tig + (e & 1)]);
            mma_ab<HD, BQ>(dva, pt, dos);
            mma_ab<HD, BQ>(dka, dst, qs);
        }
        __syncthreads(); /* everyone is done with buf before the next step refills it */
    }

    /* every row of the slot is written: rows past n_past + n_new get zeros */
    const float scale = p.scale_log2 / kLog2e;
    const int nrows = p.max_seq - k0; /* rows of this block inside the slot */
    if (split == 1) {
        store_rows<HD>(dk, lddk, kbase + wkey0, kvh * HD, warp * 16, nrows, nrows, dka, scale);
        store_rows<HD>(dv, lddv, kbase + wkey0, kvh * HD, warp * 16, nrows, nrows, dva, 1.0f);
    } else {
        const int64_t ld = (int64_t)p.nkv * HD, row0 = ((int64_t)part * p.B + b) * p.max_seq + wkey0;
        store_part<HD>(part_k, ld, row0, kvh * HD, warp * 16, nrows, dka);
        store_part<HD>(part_v, ld, row0, kvh * HD, warp * 16, nrows, dva);
    }
}

/* dK, dV from the split dkdv blocks' partials: one thread per 4 columns of a
 * (sequence, key) row, the parts added in order, dK scaled, each rounded once. */
__global__ void dkdv_reduce_kernel(Params p, int split, const float *part_k, const float *part_v, __nv_bfloat16 *dk,
                                   int64_t lddk, __nv_bfloat16 *dv, int64_t lddv) {
    const int64_t ld = (int64_t)p.nkv * p.hd, quads = ld / 4, per_part = (int64_t)p.B * p.max_seq * ld;
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (int64_t)p.B * p.max_seq * quads) return;
    const int64_t row = i / quads, c = (i % quads) * 4; /* row: b * max_seq + key */
    const int b = (int)(row / p.max_seq), key = (int)(row % p.max_seq);
    float4 sk = make_float4(0.0f, 0.0f, 0.0f, 0.0f), sv = sk;
    for (int part = 0; part < split; part++) {
        const float4 a = *reinterpret_cast<const float4 *>(part_k + part * per_part + row * ld + c);
        const float4 v = *reinterpret_cast<const float4 *>(part_v + part * per_part + row * ld + c);
        sk.x += a.x, sk.y += a.y, sk.z += a.z, sk.w += a.w;
        sv.x += v.x, sv.y += v.y, sv.z += v.z, sv.w += v.w;
    }
    const float scale = p.scale_log2 / kLog2e;
    const int64_t crow = cache_row(p, b, key);
    union { __nv_bfloat162 h[2]; uint2 u; } ok, ov; /* 4 bf16 a store: 8-byte aligned (c % 4 == 0, ld % 8 == 0) */
    ok.h[0] = __floats2bfloat162_rn(sk.x * scale, sk.y * scale);
    ok.h[1] = __floats2bfloat162_rn(sk.z * scale, sk.w * scale);
    ov.h[0] = __floats2bfloat162_rn(sv.x, sv.y);
    ov.h[1] = __floats2bfloat162_rn(sv.z, sv.w);
    *reinterpret_cast<uint2 *>(dk + crow * lddk + c) = ok.u;
    *reinterpret_cast<uint2 *>(dv + crow * lddv + c) = ov.u;
}

template <int HD>
__global__ void __launch_bounds__(kWarps * 32, 2) dq_mma_kernel(Params p, __nv_bfloat16 *dq, int64_t lddq) {
    constexpr int LDS = lds<HD>(), BK = step_rows<HD>(), MT = kDqMT;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    __nv_bfloat16 *qs = reinterpret_cast<__nv_bfloat16 *>(smem_raw); /* kDqRows x LDS */
    __nv_bfloat16 *dos = qs + kDqRows * LDS;                          /* kDqRows x LDS */
    __nv_bfloat16 *kv_buf = dos + kDqRows * LDS; /* buffer i: K at i * 2 * BK * LDS, V after it */
    int *first_key = reinterpret_cast<int *>(kv_buf + 4 * BK * LDS); /* kDqRows */

    /* the last query tiles see the most keys: start them first (as the forward) */
    const int b = blockIdx.z, h = blockIdx.y, t0 = (gridDim.x - 1 - blockIdx.x) * kDqRows;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, tig = lane % 4;
    const int n_past = p.n_past[b], n_new = p.n_new[b], kvh = h / p.group;
    const __nv_bfloat16 *q = (const __nv_bfloat16 *)p.q, *k = (const __nv_bfloat16 *)p.k,
                        *v = (const __nv_bfloat16 *)p.v, *dout = (const __nv_bfloat16 *)p.dout;
    const int kv_end = t0 < n_new ? n_past + min(t0 + kDqRows, n_new) : 0; /* keys the last real row sees */

    /* this lane's rows: g and g + 8 of each m-tile; padding rows see no key */
    const int w0 = t0 + warp * kDqWarpRows;
    int lim[MT][2]; /* row t sees keys first_key[t - t0] <= key < lim */
    float lse2[MT][2], dd[MT][2]; /* log2-domain lse and D of each row */
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int r = 0; r < 2; r++) {
            const int t = w0 + mt * 16 + g + 8 * r;
            const int64_t row = (int64_t)b * p.T + t;
            lim[mt][r] = t < n_new ? n_past + t + 1 : 0;
            lse2[mt][r] = t < n_new ? p.lse[row * p.nh + h] * kLog2e : 0.0f;
            dd[mt][r] = t < n_new ? p.dvec[row * p.nh + h] : 0.0f;
        }
    /* keys any row of the warp sees, and keys all of them see (no mask needed below) */
    const int warp_lim = w0 < n_new ? n_past + min(w0 + kDqWarpRows, n_new) : 0;
    const int warp_full = w0 + kDqWarpRows <= n_new ? n_past + w0 + 1 : 0;
    /* packed sequences, in first_key: the first key any row of the warp sees
     * (its first row's), and the first all of them see (its last real row's) */
    const int wr0 = warp * kDqWarpRows, wr_last = wr0 + max(0, min(kDqWarpRows, n_new - w0) - 1);

    float acc[MT][HD / 8][4];
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int i = 0; i < HD / 8; i++) acc[mt][i][0] = acc[mt][i][1] = acc[mt][i][2] = acc[mt][i][3] = 0.0f;

    const int64_t kbase = cache_row(p, b, 0);
    auto issue_tile = [&](int k0, int buf) {
        const int nk = min(BK, kv_end - k0);
        __nv_bfloat16 *kd = kv_buf + buf * 2 * BK * LDS;
        load_async<HD>(kd, k + (kbase + k0) * p.ldk + (int64_t)kvh * HD, p.ldk, BK, nk);
        load_async<HD>(kd + BK * LDS, v + (kbase + k0) * p.ldv + (int64_t)kvh * HD, p.ldv, BK, nk);
    };
    /* packed sequences: no row of the block sees keys before its first row's sequence */
    const int k_begin = kv_end > 0 ? key_lo(p, t0) / BK * BK : 0;
    for (int r = threadIdx.x; r < kDqRows; r += blockDim.x) /* read after the first __syncthreads */
        first_key[r] = t0 + r < n_new ? key_lo(p, t0 + r) : 0;
    if (kv_end > 0) { /* Q and dO once, with the first key tile */
        const int64_t row0 = (int64_t)b * p.T + t0;
        const int nq = min(kDqRows, n_new - t0);
        load_async<HD>(qs, q + row0 * p.ldq + (int64_t)h * HD, p.ldq, kDqRows, nq);
        load_async<HD>(dos, dout + row0 * p.lddo + (int64_t)h * HD, p.lddo, kDqRows, nq);
        issue_tile(k_begin, 0);
    }
    cp_async_commit();
    for (int k0 = k_begin, buf = 0; k0 < kv_end; k0 += BK, buf ^= 1) {
        if (k0 + BK < kv_end) issue_tile(k0 + BK, buf ^ 1);
        cp_async_commit();
        cp_async_wait_one();
        __syncthreads();
        const __nv_bfloat16 *ks = kv_buf + buf * 2 * BK * LDS, *vs = ks + BK * LDS;
        if (k0 < warp_lim && k0 + BK > first_key[wr0]) { /* else this warp's rows see none of these keys */
            float pr[MT][BK / 8][4];
            mma_abt_tiles<HD, BK, MT>(pr, qs + warp * kDqWarpRows * LDS, ks);
            const bool masked = k0 + BK > warp_full || k0 < first_key[wr_last];
#pragma unroll
            for (int mt = 0; mt < MT; mt++)
#pragma unroll
                for (int nt = 0; nt < BK / 8; nt++)
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        const int key = k0 + nt * 8 + 2 * tig + (e & 1);
                        const float x = exp2_ftz(fmaf(pr[mt][nt][e], p.scale_log2, -lse2[mt][e / 2]));
                        const int row = warp * kDqWarpRows + mt * 16 + g + 8 * (e / 2); /* of the block */
                        pr[mt][nt][e] = masked && (key >= lim[mt][e / 2] || key < first_key[row]) ? 0.0f : x;
                    }
            float ds[MT][BK / 8][4];
            mma_abt_tiles<HD, BK, MT>(ds, dos + warp * kDqWarpRows * LDS, vs);
#pragma unroll
            for (int mt = 0; mt < MT; mt++)
#pragma unroll
                for (int nt = 0; nt < BK / 8; nt++)
#pragma unroll
                    for (int e = 0; e < 4; e++) ds[mt][nt][e] = pr[mt][nt][e] * (ds[mt][nt][e] - dd[mt][e / 2]);
            mma_ab_tiles<HD, BK, MT>(acc, ds, ks);
        }
        __syncthreads(); /* everyone is done with buf before the next step refills it */
    }

    /* rows t < T are written, padding rows (t >= n_new) as zeros */
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
        const int r0 = w0 + mt * 16;
        store_rows<HD>(dq, lddq, (int64_t)b * p.T + r0, h * HD, r0, p.T, n_new, acc[mt], p.scale_log2 / kLog2e);
    }
}

template <int HD>
srlm_status launch(const Params &p, srlm_view *dq, srlm_view *dk, srlm_view *dv, int split, void *part,
                   cudaStream_t stream) {
    const size_t smem_kv = dkdv_smem_bytes<HD>(), smem_q = dq_smem_bytes<HD>();
    if (smem_kv > kDefaultSmem) /* opt in above the default 48 KB per block */
        SRLM_CUDA_TRY(cudaFuncSetAttribute(dkdv_mma_kernel<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem_kv));
    if (smem_q > kDefaultSmem)
        SRLM_CUDA_TRY(cudaFuncSetAttribute(dq_mma_kernel<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem_q));
    if (!part || split < 1 || p.group % split != 0) split = 1;
    const int64_t per_part = (int64_t)p.B * p.max_seq * p.nkv * HD; /* floats of one part's dK (or dV) */
    float *part_k = split > 1 ? (float *)part : NULL, *part_v = split > 1 ? part_k + split * per_part : NULL;
    dim3 grid_kv((p.max_seq + kTile - 1) / kTile, p.nkv * split, p.B);
    dkdv_mma_kernel<HD><<<grid_kv, kWarps * 32, smem_kv, stream>>>(p, split, part_k, part_v,
                                                                    (__nv_bfloat16 *)dk->data, dk->stride,
                                                                    (__nv_bfloat16 *)dv->data, dv->stride);
    SRLM_CUDA_TRY(cudaGetLastError());
    if (split > 1) SRLM_CHECK(launch_dkdv_reduce(p, split, part_k, part_v, dk, dv, stream));
    if (p.T == 0) return SRLM_OK; /* no query rows: dk, dv are all zeros */
    dim3 grid_q((p.T + kDqRows - 1) / kDqRows, p.nh, p.B);
    dq_mma_kernel<HD><<<grid_q, kWarps * 32, smem_q, stream>>>(p, (__nv_bfloat16 *)dq->data, dq->stride);
    SRLM_CUDA_TRY(cudaGetLastError());
    return SRLM_OK;
}

}  // namespace

bool attn::bwd_mma_eligible(const Params &p, srlm_dtype dt, const srlm_view *dq, const srlm_view *dk,
                            const srlm_view *dv) {
    if (dt != SRLM_BF16 || (p.hd != 64 && p.hd != 128)) return false;
    const size_t smem_kv = p.hd == 64 ? dkdv_smem_bytes<64>() : dkdv_smem_bytes<128>();
    const size_t smem_q = p.hd == 64 ? dq_smem_bytes<64>() : dq_smem_bytes<128>();
    if (smem_kv > smem_optin() || smem_q > smem_optin()) return false; /* dq at hd 128 on sm_86/sm_89 */
    /* 16-byte copies of whole head rows (8 bf16) and 4-byte bf16x2 stores */
    return aligned16(p.q) && aligned16(p.k) && aligned16(p.v) && aligned16(p.dout) && aligned16(dq->data) &&
           aligned16(dk->data) && aligned16(dv->data) && p.ldq % 8 == 0 && p.ldk % 8 == 0 && p.ldv % 8 == 0 &&
           p.lddo % 8 == 0 && dq->stride % 8 == 0 && dk->stride % 8 == 0 && dv->stride % 8 == 0;
}

static std::atomic<int> g_forced_split{0}; /* srlm_cuda_attention_bwd_force_split */

extern "C" void srlm_cuda_attention_bwd_force_split(int blocks_per_group) {
    g_forced_split.store(blocks_per_group > 0 ? blocks_per_group : 0, std::memory_order_relaxed);
}

int attn::bwd_head_split(int B, int len, int nkv, int group) {
    if (group <= 1) return 1;
    const int forced = g_forced_split.load(std::memory_order_relaxed);
    if (forced > 0) return group % forced == 0 ? forced : 1;
    const int64_t blocks = (int64_t)((len + kTile - 1) / kTile) * nkv * B; /* those with work */
    const int64_t want = 8LL * device_attr<cudaDevAttrMultiProcessorCount>(132); /* ~4 waves of 2 blocks */
    int split = 1;
    for (int d = 2; d <= group && blocks * split < want; d++)
        if (group % d == 0) split = d;
    return split;
}

srlm_status attn::launch_bwd_mma(const Params &p, srlm_view *dq, srlm_view *dk, srlm_view *dv, int split,
                                 void *part, cudaStream_t stream) {
    return p.hd == 64 ? launch<64>(p, dq, dk, dv, split, part, stream)
                      : launch<128>(p, dq, dk, dv, split, part, stream);
}

srlm_status attn::launch_dkdv_reduce(const Params &p, int split, const float *part_k, const float *part_v,
                                     srlm_view *dk, srlm_view *dv, cudaStream_t stream) {
    const int64_t threads = (int64_t)p.B * p.max_seq * p.nkv * p.hd / 4;
    dkdv_reduce_kernel<<<(unsigned)((threads + 255) / 256), 256, 0, stream>>>(
        p, split, part_k, part_v, (__nv_bfloat16 *)dk->data, dk->stride, (__nv_bfloat16 *)dv->data, dv->stride);
    SRLM_CUDA_TRY(cudaGetLastError());
    return SRLM_OK;
}
