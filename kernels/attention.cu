/* Flash-style attention forward: each block owns a tile of query rows of one
 * (sequence, head) and walks the key tiles with an online softmax (running
 * max and sum, rescaling the partial output), so nothing seq x seq is ever
 * stored. Two kernels with the same algorithm:
 *   fwd_mma_kernel     bf16, head_dim 64/128: mma.sync m16n8k16, fp32 accumulators
 *   fwd_generic_kernel float or bf16, any head_dim <= 256: scalar FMAs in fp32
 * The backward (attention_bwd.cu) reuses both in "stats" mode (p.dvec set)
 * when it is not given the forward's saved output and lse.
 * fwd_mma_kernel on an H100 (bf16, hd 128, causal, S 512..4096), against
 * PyTorch's flash backend in the same run: loading each K/V tile between
 * barriers 44-64 TFLOP/s (0.20-0.24x); streaming the next tile with cp.async
 * 97-157 (0.50-0.54x); two m16 tiles per warp, 128 rows per block 131-230
 * (0.70-0.75x); one FFMA and ex2.ftz per score 137-235 (0.73-0.76x); no
 * rescale when no row's max moved 140-241 (0.75-0.78x). On compute
 * capability 9.0 the forward runs fwd_sm90_kernel (attention_sm90.cu, wgmma)
 * instead; this one serves sm_80 and the comparisons. */
#include "attention_tiles.cuh"

using namespace attn;

namespace {

/* ---------------- scalar path ---------------- */

constexpr int kGenWarps = 4;
constexpr int kGenRows = 4;                   /* query rows per warp */
constexpr int kGenBQ = kGenWarps * kGenRows;  /* query rows per block */
constexpr int kGenBK = 32;                    /* keys per tile: one per lane */

static size_t gen_smem_bytes(int hd) {
    return sizeof(float) * ((size_t)kGenBQ * hd + (size_t)kGenBK * (hd + 1) + (size_t)kGenBK * hd +
                            (size_t)kGenWarps * kGenRows * kGenBK);
}

/* Lane j scores key j of the tile against the warp's rows (K rows padded to
 * hd+1 floats so 32 lanes reading 32 different rows hit 32 banks); the
 * output columns are split over lanes (d = lane + 32c) for P V. */
template <typename T, int ND>
__global__ void __launch_bounds__(kGenWarps * 32) fwd_generic_kernel(Params p) {
    extern __shared__ float smem[];
    const int hd = p.hd, ldks = hd + 1;
    float *qs = smem;                     /* kGenBQ x hd, pre-scaled into the log2 domain */
    float *ks = qs + kGenBQ * hd;         /* kGenBK x (hd+1) */
    float *vs = ks + kGenBK * ldks;       /* kGenBK x hd */
    float *ps = vs + kGenBK * hd;         /* kGenWarps x kGenRows x kGenBK probabilities */

    const int b = blockIdx.z, h = blockIdx.y, t0 = blockIdx.x * kGenBQ;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int n_past = p.n_past[b], n_new = p.n_new[b], kvh = h / p.group;
    const T *q = (const T *)p.q, *k = (const T *)p.k, *v = (const T *)p.v;
    /* keys the block's last real row sees; 0 for an all-padding tile */
    const int kv_end = t0 < n_new ? n_past + min(t0 + kGenBQ, n_new) : 0;

    for (int i = threadIdx.x; i < kGenBQ * hd; i += blockDim.x) {
        int r = i / hd, d = i % hd, t = t0 + r;
        qs[i] = t < n_new ? ld(q[((int64_t)b * p.T + t) * p.ldq + (int64_t)h * hd + d]) * p.scale_log2
                          : 0.0f;
    }

    float m[kGenRows], l[kGenRows], o[kGenRows][ND];
    int lim[kGenRows], lo[kGenRows]; /* row r sees keys lo[r] <= j < lim[r]; none for padding rows */
#pragma unroll
    for (int r = 0; r < kGenRows; r++) {
        int t = t0 + warp * kGenRows + r;
        lim[r] = t < n_new ? n_past + t + 1 : 0;
        lo[r] = t < n_new ? key_lo(p, t) : 0;
        m[r] = -INFINITY;
        l[r] = 0.0f;
#pragma unroll
        for (int c = 0; c < ND; c++) o[r][c] = 0.0f;
    }
    int warp_lim = 0;
#pragma unroll
    for (int r = 0; r < kGenRows; r++) warp_lim = max(warp_lim, lim[r]);

    const int64_t kbase = cache_row(p, b, 0);
    /* packed sequences: no row of the block sees keys before its first row's sequence */
    const int k_begin = kv_end > 0 ? key_lo(p, t0) / kGenBK * kGenBK : 0;
    for (int k0 = k_begin; k0 < kv_end; k0 += kGenBK) {
        __syncthreads(); /* the previous tile is no longer read */
        for (int i = threadIdx.x; i < kGenBK * hd; i += blockDim.x) {
            int j = i / hd, d = i % hd, key = k0 + j;
            float kx = 0.0f, vx = 0.0f; /* zeros past the end: 0 * garbage would be NaN */
            if (key < kv_end) {
                kx = ld(k[(kbase + key) * p.ldk + (int64_t)kvh * hd + d]);
                vx = ld(v[(kbase + key) * p.ldv + (int64_t)kvh * hd + d]);
            }
            ks[j * ldks + d] = kx;
            vs[j * hd + d] = vx;
        }
        __syncthreads();
        if (k0 >= warp_lim) continue; /* the whole tile is masked for this warp */

        float s[kGenRows];
#pragma unroll
        for (int r = 0; r < kGenRows; r++) s[r] = 0.0f;
        const float *kr = ks + lane * ldks;
        const float *qw = qs + warp * kGenRows * hd;
        for (int d = 0; d < hd; d++) {
            float kd = kr[d];
#pragma unroll
            for (int r = 0; r < kGenRows; r++) s[r] += qw[r * hd + d] * kd;
        }
        const int key = k0 + lane;
#pragma unroll
        for (int r = 0; r < kGenRows; r++) {
            float sr = key < lim[r] && key >= lo[r] ? s[r] : -INFINITY;
            float m_new = fmaxf(m[r], warp_max(sr));
            float m_use = m_new == -INFINITY ? 0.0f : m_new; /* no row seen yet: avoid inf - inf */
            float alpha = exp2f(m[r] - m_use);
            float pr = exp2f(sr - m_use);
            l[r] = l[r] * alpha + pr; /* per-lane partial; summed over lanes at the end */
            m[r] = m_new;
#pragma unroll
            for (int c = 0; c < ND; c++) o[r][c] *= alpha;
            ps[(warp * kGenRows + r) * kGenBK + lane] = pr;
        }
        __syncwarp();
        const int jn = min(kGenBK, warp_lim - k0);
        for (int j = 0; j < jn; j++) {
#pragma unroll
            for (int c = 0; c < ND; c++) {
                int d = lane + 32 * c;
                float vx = d < hd ? vs[j * hd + d] : 0.0f;
#pragma unroll
                for (int r = 0; r < kGenRows; r++) o[r][c] += ps[(warp * kGenRows + r) * kGenBK + j] * vx;
            }
        }
        __syncwarp();
    }

    const T *dout = (const T *)p.dout;
    T *out = (T *)p.out;
#pragma unroll
    for (int r = 0; r < kGenRows; r++) {
        int t = t0 + warp * kGenRows + r;
        if (t >= p.T) break;
        const bool real = t < n_new;
        float lsum = warp_sum(l[r]);
        float inv = lsum > 0.0f ? 1.0f / lsum : 0.0f;
        const int64_t row = (int64_t)b * p.T + t;
        if (p.lse && lane == 0) p.lse[row * p.nh + h] = real ? (m[r] + log2f(lsum)) * kLn2 : 0.0f;
        if (p.dvec) { /* backward stats: D = sum_d O[d] dO[d], O not stored */
            float dsum = 0.0f;
#pragma unroll
            for (int c = 0; c < ND; c++) {
                int d = lane + 32 * c;
                if (d < hd && real) dsum += o[r][c] * inv * ld(dout[row * p.lddo + (int64_t)h * hd + d]);
            }
            dsum = warp_sum(dsum);
            if (lane == 0) p.dvec[row * p.nh + h] = dsum;
        } else {
#pragma unroll
            for (int c = 0; c < ND; c++) {
                int d = lane + 32 * c;
                if (d < hd) out[row * p.ldo + (int64_t)h * hd + d] = from_f32<T>(real ? o[r][c] * inv : 0.0f);
            }
        }
    }
}

/* ---------------- tensor-core path (bf16, head_dim 64 or 128) ---------------- */

constexpr int kMmaWarps = 4;
constexpr int kMmaMT = 2;                             /* m16 tiles (16 query rows each) per warp */
constexpr int kMmaWarpRows = 16 * kMmaMT;             /* query rows per warp */
constexpr int kMmaBQ = kMmaWarpRows * kMmaWarps;      /* query rows per block */
constexpr int kMmaBK = 64;                            /* keys per tile (32: 5-10% slower on an H100) */

/* Q, then two buffers of (K tile, V tile): tile i + 1 loads while tile i is used. */
template <int HD> static size_t mma_smem_bytes() {
    return sizeof(__nv_bfloat16) * (size_t)(kMmaBQ + 4 * kMmaBK) * lds<HD>();
}

/* Each warp owns 32 query rows as two m16 tiles, so every K or V fragment
 * read from shared memory feeds four mma instead of two: S (16 x 64 per tile)
 * = Q K^T by mma, Q fragments re-read from shared memory per k-chunk (keeping
 * them in registers for both tiles would not fit beside the two output
 * tiles), the online softmax on the S accumulators, then P, re-packed as bf16
 * A fragments (accumulator layout of two n-tiles == A layout of one k-step),
 * times V. */
template <int HD>
__global__ void __launch_bounds__(kMmaWarps * 32, 2) fwd_mma_kernel(Params p) {
    constexpr int LDS = lds<HD>();
    extern __shared__ __align__(16) unsigned char smem_raw[];
    __nv_bfloat16 *qs = reinterpret_cast<__nv_bfloat16 *>(smem_raw);
    __nv_bfloat16 *kv_buf = qs + kMmaBQ * LDS; /* buffer i: K at i * 2 * tile, V after it */

    /* the last query tiles see the most keys: start them first, so the short
     * ones fill in at the end instead of leaving a long tail */
    const int b = blockIdx.z, h = blockIdx.y, t0 = (gridDim.x - 1 - blockIdx.x) * kMmaBQ;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4;
    const int n_past = p.n_past[b], n_new = p.n_new[b], kvh = h / p.group;
    const __nv_bfloat16 *q = (const __nv_bfloat16 *)p.q, *k = (const __nv_bfloat16 *)p.k,
                        *v = (const __nv_bfloat16 *)p.v;
    const int kv_end = t0 < n_new ? n_past + min(t0 + kMmaBQ, n_new) : 0;

    load_async<HD>(qs, q + ((int64_t)b * p.T + t0) * p.ldq + (int64_t)h * HD, p.ldq, kMmaBQ,
                   min(kMmaBQ, n_new - t0));
    cp_async_commit();

    /* this lane's rows: g and g + 8 of each m-tile; row t sees keys < lim */
    const int w0 = t0 + warp * kMmaWarpRows; /* the warp's first query row */
    int lim[kMmaMT][2], lo[kMmaMT][2];
#pragma unroll
    for (int mt = 0; mt < kMmaMT; mt++)
#pragma unroll
        for (int r = 0; r < 2; r++) {
            const int t = w0 + mt * 16 + g + 8 * r;
            lim[mt][r] = t < n_new ? n_past + t + 1 : 0;
            lo[mt][r] = t < n_new ? key_lo(p, t) : 0;
        }
    /* keys any row of the warp sees, and keys every row of it sees (below
     * that a tile needs no mask; 0 when the warp holds padding rows); with
     * packed sequences, the first key any row sees and the first all see
     * (from it on no mask is needed at the low end) */
    const int warp_lim = w0 < n_new ? n_past + min(w0 + kMmaWarpRows, n_new) : 0;
    const int warp_full = w0 + kMmaWarpRows <= n_new ? n_past + w0 + 1 : 0;
    const int warp_lo = w0 < n_new ? key_lo(p, w0) : 0;
    const int warp_lo_all = w0 < n_new ? key_lo(p, min(w0 + kMmaWarpRows, n_new) - 1) : 0;

    float m[kMmaMT][2], l[kMmaMT][2], o[kMmaMT][HD / 8][4];
#pragma unroll
    for (int mt = 0; mt < kMmaMT; mt++) {
        m[mt][0] = m[mt][1] = -INFINITY;
        l[mt][0] = l[mt][1] = 0.0f;
#pragma unroll
        for (int i = 0; i < HD / 8; i++) o[mt][i][0] = o[mt][i][1] = o[mt][i][2] = o[mt][i][3] = 0.0f;
    }

    const int64_t kbase = cache_row(p, b, 0);
    auto issue_tile = [&](int k0, int buf) {
        const int nk = min(kMmaBK, kv_end - k0);
        __nv_bfloat16 *kd = kv_buf + buf * 2 * kMmaBK * LDS;
        load_async<HD>(kd, k + (kbase + k0) * p.ldk + (int64_t)kvh * HD, p.ldk, kMmaBK, nk);
        load_async<HD>(kd + kMmaBK * LDS, v + (kbase + k0) * p.ldv + (int64_t)kvh * HD, p.ldv, kMmaBK, nk);
    };
    /* packed sequences: no row of the block sees keys before its first row's sequence */
    const int k_begin = kv_end > 0 ? key_lo(p, t0) / kMmaBK * kMmaBK : 0;
    if (kv_end > 0) issue_tile(k_begin, 0);
    cp_async_commit();
    for (int k0 = k_begin, buf = 0; k0 < kv_end; k0 += kMmaBK, buf ^= 1) {
        /* the next tile into the other buffer (its last readers passed the
         * __syncthreads at the end of the previous step), then wait for this
         * one (and, on the first step, for Q) */
        if (k0 + kMmaBK < kv_end) issue_tile(k0 + kMmaBK, buf ^ 1);
        cp_async_commit();
        cp_async_wait_one();
        __syncthreads();
        const __nv_bfloat16 *ks = kv_buf + buf * 2 * kMmaBK * LDS, *vs = ks + kMmaBK * LDS;
        if (k0 < warp_lim && k0 + kMmaBK > warp_lo) { /* else this warp's rows see none of these keys */
            /* S = Q K^T: 8 n-tiles of 8 keys per m-tile */
            float s[kMmaMT][kMmaBK / 8][4];
            mma_abt_tiles<HD, kMmaBK, kMmaMT>(s, qs + warp * kMmaWarpRows * LDS, ks);
            const bool masked = k0 + kMmaBK > warp_full || k0 < warp_lo_all;
#pragma unroll
            for (int mt = 0; mt < kMmaMT; mt++)
                softmax_step<HD, kMmaBK>(s[mt], m[mt], l[mt], o[mt], lim[mt], lo[mt], k0, masked, p.scale_log2);
            /* O += P V: P re-packed from the S accumulators to bf16 A fragments */
            mma_ab_tiles<HD, kMmaBK, kMmaMT>(o, s, vs);
        }
        __syncthreads(); /* everyone is done with buf before the next step refills it */
    }

#pragma unroll
    for (int mt = 0; mt < kMmaMT; mt++) store_fwd_rows<HD>(p, b, h, w0 + mt * 16, n_new, o[mt], m[mt], l[mt]);
}

template <int HD>
srlm_status launch_mma(const Params &p, cudaStream_t stream) {
    const size_t smem = mma_smem_bytes<HD>();
    if (smem > kDefaultSmem) /* opt in above the default 48 KB per block */
        SRLM_CUDA_TRY(cudaFuncSetAttribute(fwd_mma_kernel<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    dim3 grid((p.T + kMmaBQ - 1) / kMmaBQ, p.nh, p.B);
    fwd_mma_kernel<HD><<<grid, kMmaWarps * 32, smem, stream>>>(p);
    SRLM_CUDA_TRY(cudaGetLastError());
    return SRLM_OK;
}

template <typename T, int ND>
srlm_status launch_generic(const Params &p, cudaStream_t stream) {
    const size_t smem = gen_smem_bytes(p.hd);
    if (smem > kDefaultSmem)
        SRLM_CUDA_TRY(cudaFuncSetAttribute(fwd_generic_kernel<T, ND>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    dim3 grid((p.T + kGenBQ - 1) / kGenBQ, p.nh, p.B);
    fwd_generic_kernel<T, ND><<<grid, kGenWarps * 32, smem, stream>>>(p);
    SRLM_CUDA_TRY(cudaGetLastError());
    return SRLM_OK;
}

template <typename T>
srlm_status launch_generic_t(const Params &p, cudaStream_t stream) {
    switch (lane_chunks(p.hd)) {
    case 2: return launch_generic<T, 2>(p, stream);
    case 4: return launch_generic<T, 4>(p, stream);
    default: return launch_generic<T, 8>(p, stream);
    }
}

}  // namespace

srlm_status attn::launch_fwd(const Params &p, srlm_dtype dt, cudaStream_t stream) {
    if (p.B == 0 || p.T == 0) return SRLM_OK;
    if (dt == SRLM_BF16 && (p.hd == 64 || p.hd == 128)) {
        /* 16-byte vector loads of whole head rows, and 4-byte bf16x2 stores */
        bool ok = aligned16(p.q) && aligned16(p.k) && aligned16(p.v) && p.ldq % 8 == 0 &&
                  p.ldk % 8 == 0 && p.ldv % 8 == 0;
        if (p.dvec) ok = ok && ((uintptr_t)p.dout & 3u) == 0 && p.lddo % 2 == 0;
        else ok = ok && ((uintptr_t)p.out & 3u) == 0 && p.ldo % 2 == 0;
        ok = ok && (p.hd == 64 ? mma_smem_bytes<64>() : mma_smem_bytes<128>()) <= smem_optin();
        if (ok && use_sm90(p.hd)) return launch_fwd_sm90(p, stream);
        if (ok) return p.hd == 64 ? launch_mma<64>(p, stream) : launch_mma<128>(p, stream);
    }
    if (dt == SRLM_BF16) return launch_generic_t<__nv_bfloat16>(p, stream);
    return launch_generic_t<float>(p, stream);
}

extern "C" void srlm_cuda_attn_seg_bounds(const int *seg_off, int n_seg, int T, int *lo, int *hi) {
    int i = 0;
    for (int t = 0; t < T; t++) {
        while (i < n_seg && t >= seg_off[i + 1]) i++;
        const bool packed = i < n_seg;
        lo[t] = packed ? seg_off[i] : seg_off[n_seg];
        hi[t] = packed ? seg_off[i + 1] : seg_off[n_seg];
    }
}

extern "C" srlm_status srlm_cuda_attention_fwd(srlm_view *out, const srlm_view *q, const srlm_view *k_cache,
                                               const srlm_view *v_cache, const srlm_cuda_attn_shape *s,
                                               float *lse, void *stream) {
    SRLM_CHECK(check_args("attention", out, "out", q, k_cache, v_cache, s));
    Params p = make_params(out, q, k_cache, v_cache, s);
    p.lse = lse;
    return launch_fwd(p, q->dtype, (cudaStream_t)stream);
}
