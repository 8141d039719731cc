/* Attention backward, deterministic and without atomics, recomputing the
 * probabilities from q and k:
 *   1. the row statistics lse and D = rowsum(dO * O) per (row, head): from the
 *      forward's saved output and lse (dvec_kernel), or, without them, by the
 *      forward kernel in stats mode
 *   2. dkdv_kernel: per (sequence, kv head, 16 keys), loops over the query tiles
 *      of every query head of the GQA group in a fixed order:
 *        dV += P^T dO,  dK += scale dS^T Q,  dS = P * (dP - D),  dP = dO V^T
 *   3. dq_kernel: per (sequence, head, 16 query rows), loops over key tiles:
 *        dQ += scale dS K
 * P = exp(scale q.k - lse) is recomputed in both 2 and 3. bf16 with head_dim
 * 64 or 128 and 16-byte aligned rows runs 2 and 3 on the tensor cores
 * (attention_bwd_mma.cu, same algorithm and outputs); everything else runs the
 * scalar kernels below: fp32 math for float and bf16, any head_dim <= 256. */
#include "attention_bwd_mma.cuh"

using namespace attn;

namespace {

constexpr int kWarps = 4;
constexpr int kKeysPerWarp = 4;                 /* dkdv: keys whose dK/dV a warp keeps in registers */
constexpr int kKeyTile = kWarps * kKeysPerWarp; /* dkdv: keys per block */
constexpr int kQTile = 32;                      /* dkdv: query rows per step, one per lane */
constexpr int kRows = 4;                        /* dq: query rows per warp */
constexpr int kRowTile = kWarps * kRows;        /* dq: query rows per block */
constexpr int kKTile = 32;                      /* dq: keys per step, one per lane */

static size_t dkdv_smem_bytes(int hd) {
    return sizeof(float) * (2 * (size_t)kKeyTile * hd + 2 * (size_t)kQTile * (hd + 1) + 2 * kQTile +
                            2 * (size_t)kWarps * kKeysPerWarp * kQTile);
}
static size_t dq_smem_bytes(int hd) {
    return sizeof(float) * (2 * (size_t)kRowTile * hd + 2 * (size_t)kKTile * (hd + 1) +
                            (size_t)kWarps * kRows * kKTile);
}

static size_t ws_part(const srlm_cuda_attn_shape *s) {
    size_t n = sizeof(float) * (size_t)s->B * (size_t)s->T * (size_t)s->n_heads;
    return (n + 255) / 256 * 256;
}

/* Lane i holds query row i of the step for the score phase (Q and dO rows
 * padded to hd+1 floats: 32 lanes, 32 rows, 32 banks); the warp's keys are
 * broadcast reads. Then the columns are split over lanes for the outer
 * products, summing the rows in order. */
template <typename T, int ND>
__global__ void __launch_bounds__(kWarps * 32)
    dkdv_kernel(Params p, T *dk, int64_t lddk, T *dv, int64_t lddv, const float *lse, const float *dvec) {
    extern __shared__ float smem[];
    const int hd = p.hd, ldr = hd + 1;
    float *ks = smem;                   /* kKeyTile x hd */
    float *vs = ks + kKeyTile * hd;     /* kKeyTile x hd */
    float *qs = vs + kKeyTile * hd;     /* kQTile x (hd+1) */
    float *dos = qs + kQTile * ldr;     /* kQTile x (hd+1) */
    float *ls = dos + kQTile * ldr;     /* kQTile lse in the log2 domain */
    float *ds_ = ls + kQTile;           /* kQTile D */
    float *ps = ds_ + kQTile;           /* kWarps x kKeysPerWarp x kQTile */
    float *dss = ps + kWarps * kKeysPerWarp * kQTile;

    const int b = blockIdx.z, kvh = blockIdx.y, k0 = blockIdx.x * kKeyTile;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int n_past = p.n_past[b], n_new = p.n_new[b], kv_end = n_past + n_new;
    const T *q = (const T *)p.q, *k = (const T *)p.k, *v = (const T *)p.v, *dout = (const T *)p.dout;
    const int64_t kbase = cache_row(p, b, 0);
    const float scale = p.scale_log2 / kLog2e;

    float dka[kKeysPerWarp][ND], dva[kKeysPerWarp][ND];
#pragma unroll
    for (int kk = 0; kk < kKeysPerWarp; kk++)
#pragma unroll
        for (int c = 0; c < ND; c++) dka[kk][c] = dva[kk][c] = 0.0f;

    if (k0 < kv_end) { /* block-uniform; key tiles past the end only write zeros */
        for (int i = threadIdx.x; i < kKeyTile * hd; i += blockDim.x) {
            int j = i / hd, d = i % hd, key = k0 + j;
            float kx = 0.0f, vx = 0.0f;
            if (key < kv_end) {
                kx = ld(k[(kbase + key) * p.ldk + (int64_t)kvh * hd + d]);
                vx = ld(v[(kbase + key) * p.ldv + (int64_t)kvh * hd + d]);
            }
            ks[i] = kx;
            vs[i] = vx;
        }
        const int wkey0 = k0 + warp * kKeysPerWarp; /* this warp's first key */
        /* query row t sees key j when n_past + t >= j: start at the first row
         * that sees k0; with packed sequences, stop after the last row of the
         * block's last key's sequence */
        const int tq_first = max(0, k0 - n_past) / kQTile * kQTile;
        const int tq_end = row_hi(p, min(k0 + kKeyTile, kv_end) - 1, n_new);
        for (int h = kvh * p.group; h < (kvh + 1) * p.group; h++) {
            for (int tq0 = tq_first; tq0 < tq_end; tq0 += kQTile) {
                __syncthreads(); /* previous step's tiles are no longer read */
                for (int i = threadIdx.x; i < kQTile * hd; i += blockDim.x) {
                    int r = i / hd, d = i % hd, t = tq0 + r;
                    float qx = 0.0f, dox = 0.0f;
                    if (t < n_new) {
                        int64_t row = (int64_t)b * p.T + t;
                        qx = ld(q[row * p.ldq + (int64_t)h * hd + d]);
                        dox = ld(dout[row * p.lddo + (int64_t)h * hd + d]);
                    }
                    qs[r * ldr + d] = qx;
                    dos[r * ldr + d] = dox;
                }
                if (threadIdx.x < kQTile) {
                    int t = tq0 + threadIdx.x;
                    int64_t row = (int64_t)b * p.T + t;
                    ls[threadIdx.x] = t < n_new ? lse[row * p.nh + h] * kLog2e : 0.0f;
                    ds_[threadIdx.x] = t < n_new ? dvec[row * p.nh + h] : 0.0f;
                }
                __syncthreads();
                /* the warp's keys are all after this step's last real row: nothing to add */
                if (wkey0 > n_past + min(tq0 + kQTile, n_new) - 1) continue;

                const int t = tq0 + lane;
                const int qpos = t < n_new ? n_past + t : -1; /* padding rows see no key */
                const int qlo = t < n_new ? key_lo(p, t) : 0;
                float *pw = ps + warp * kKeysPerWarp * kQTile, *dsw = dss + warp * kKeysPerWarp * kQTile;
#pragma unroll
                for (int kk = 0; kk < kKeysPerWarp; kk++) {
                    const float *kr = ks + (warp * kKeysPerWarp + kk) * hd;
                    const float *vr = vs + (warp * kKeysPerWarp + kk) * hd;
                    float s = 0.0f, dp = 0.0f;
                    for (int d = 0; d < hd; d++) {
                        s += qs[lane * ldr + d] * kr[d];
                        dp += dos[lane * ldr + d] * vr[d];
                    }
                    bool vis = wkey0 + kk <= qpos && wkey0 + kk >= qlo;
                    float pr = vis ? exp2f(s * p.scale_log2 - ls[lane]) : 0.0f;
                    pw[kk * kQTile + lane] = pr;
                    dsw[kk * kQTile + lane] = vis ? pr * (dp - ds_[lane]) : 0.0f;
                }
                __syncwarp();
                const int rn = min(kQTile, n_new - tq0);
                for (int i = 0; i < rn; i++) {
#pragma unroll
                    for (int c = 0; c < ND; c++) {
                        int d = lane + 32 * c;
                        float qx = d < hd ? qs[i * ldr + d] : 0.0f, dox = d < hd ? dos[i * ldr + d] : 0.0f;
#pragma unroll
                        for (int kk = 0; kk < kKeysPerWarp; kk++) {
                            dva[kk][c] += pw[kk * kQTile + i] * dox;
                            dka[kk][c] += dsw[kk * kQTile + i] * qx;
                        }
                    }
                }
                __syncwarp();
            }
        }
    }

    /* every row of the slot is written: rows past n_past + n_new get zeros */
#pragma unroll
    for (int kk = 0; kk < kKeysPerWarp; kk++) {
        int key = k0 + warp * kKeysPerWarp + kk;
        if (key >= p.max_seq) break;
#pragma unroll
        for (int c = 0; c < ND; c++) {
            int d = lane + 32 * c;
            if (d >= hd) continue;
            dk[(kbase + key) * lddk + (int64_t)kvh * hd + d] = from_f32<T>(dka[kk][c] * scale);
            dv[(kbase + key) * lddv + (int64_t)kvh * hd + d] = from_f32<T>(dva[kk][c]);
        }
    }
}

/* The forward kernel's shape: lane j takes key j of the tile for the scores,
 * then the columns are split over lanes for dQ += dS K. */
template <typename T, int ND>
__global__ void __launch_bounds__(kWarps * 32)
    dq_kernel(Params p, T *dq, int64_t lddq, const float *lse, const float *dvec) {
    extern __shared__ float smem[];
    const int hd = p.hd, ldr = hd + 1;
    float *qs = smem;                   /* kRowTile x hd */
    float *dos = qs + kRowTile * hd;    /* kRowTile x hd */
    float *ks = dos + kRowTile * hd;    /* kKTile x (hd+1) */
    float *vs = ks + kKTile * ldr;      /* kKTile x (hd+1) */
    float *dss = vs + kKTile * ldr;     /* kWarps x kRows x kKTile */

    const int b = blockIdx.z, h = blockIdx.y, t0 = blockIdx.x * kRowTile;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int n_past = p.n_past[b], n_new = p.n_new[b], kvh = h / p.group;
    const T *q = (const T *)p.q, *k = (const T *)p.k, *v = (const T *)p.v, *dout = (const T *)p.dout;
    const float scale = p.scale_log2 / kLog2e;
    const int kv_end = t0 < n_new ? n_past + min(t0 + kRowTile, n_new) : 0;

    for (int i = threadIdx.x; i < kRowTile * hd; i += blockDim.x) {
        int r = i / hd, d = i % hd, t = t0 + r;
        float qx = 0.0f, dox = 0.0f;
        if (t < n_new) {
            int64_t row = (int64_t)b * p.T + t;
            qx = ld(q[row * p.ldq + (int64_t)h * hd + d]);
            dox = ld(dout[row * p.lddo + (int64_t)h * hd + d]);
        }
        qs[i] = qx;
        dos[i] = dox;
    }
    int lim[kRows], lo[kRows];
    float lr[kRows], dr[kRows], acc[kRows][ND];
    int warp_lim = 0;
#pragma unroll
    for (int r = 0; r < kRows; r++) {
        int t = t0 + warp * kRows + r;
        int64_t row = (int64_t)b * p.T + t;
        lim[r] = t < n_new ? n_past + t + 1 : 0;
        lo[r] = t < n_new ? key_lo(p, t) : 0;
        lr[r] = t < n_new ? lse[row * p.nh + h] * kLog2e : 0.0f;
        dr[r] = t < n_new ? dvec[row * p.nh + h] : 0.0f;
        warp_lim = max(warp_lim, lim[r]);
#pragma unroll
        for (int c = 0; c < ND; c++) acc[r][c] = 0.0f;
    }

    const int64_t kbase = cache_row(p, b, 0);
    float *dsw = dss + warp * kRows * kKTile;
    /* packed sequences: no row of the block sees keys before its first row's sequence */
    const int k_begin = kv_end > 0 ? key_lo(p, t0) / kKTile * kKTile : 0;
    for (int k0 = k_begin; k0 < kv_end; k0 += kKTile) {
        __syncthreads();
        for (int i = threadIdx.x; i < kKTile * hd; i += blockDim.x) {
            int j = i / hd, d = i % hd, key = k0 + j;
            float kx = 0.0f, vx = 0.0f;
            if (key < kv_end) {
                kx = ld(k[(kbase + key) * p.ldk + (int64_t)kvh * hd + d]);
                vx = ld(v[(kbase + key) * p.ldv + (int64_t)kvh * hd + d]);
            }
            ks[j * ldr + d] = kx;
            vs[j * ldr + d] = vx;
        }
        __syncthreads();
        if (k0 >= warp_lim) continue;

        float s[kRows], dp[kRows];
#pragma unroll
        for (int r = 0; r < kRows; r++) s[r] = dp[r] = 0.0f;
        const float *qw = qs + warp * kRows * hd, *dow = dos + warp * kRows * hd;
        for (int d = 0; d < hd; d++) {
            float kx = ks[lane * ldr + d], vx = vs[lane * ldr + d];
#pragma unroll
            for (int r = 0; r < kRows; r++) {
                s[r] += qw[r * hd + d] * kx;
                dp[r] += dow[r * hd + d] * vx;
            }
        }
        const int key = k0 + lane;
#pragma unroll
        for (int r = 0; r < kRows; r++) {
            float pr = key < lim[r] && key >= lo[r] ? exp2f(s[r] * p.scale_log2 - lr[r]) : 0.0f;
            dsw[r * kKTile + lane] = pr * (dp[r] - dr[r]);
        }
        __syncwarp();
        const int jn = min(kKTile, warp_lim - k0);
        for (int j = 0; j < jn; j++) {
#pragma unroll
            for (int c = 0; c < ND; c++) {
                int d = lane + 32 * c;
                float kx = d < hd ? ks[j * ldr + d] : 0.0f;
#pragma unroll
                for (int r = 0; r < kRows; r++) acc[r][c] += dsw[r * kKTile + j] * kx;
            }
        }
        __syncwarp();
    }

#pragma unroll
    for (int r = 0; r < kRows; r++) {
        int t = t0 + warp * kRows + r;
        if (t >= p.T) break;
        int64_t row = (int64_t)b * p.T + t;
#pragma unroll
        for (int c = 0; c < ND; c++) {
            int d = lane + 32 * c;
            if (d < hd) dq[row * lddq + (int64_t)h * hd + d] = from_f32<T>(t < n_new ? acc[r][c] * scale : 0.0f);
        }
    }
}

template <typename T, int ND>
srlm_status launch_bwd(const Params &p, srlm_view *dq, srlm_view *dk, srlm_view *dv, const float *lse,
                       const float *dvec, cudaStream_t stream) {
    const size_t smem_kv = dkdv_smem_bytes(p.hd), smem_q = dq_smem_bytes(p.hd);
    if (smem_kv > kDefaultSmem) /* opt in above the default 48 KB per block */
        SRLM_CUDA_TRY(cudaFuncSetAttribute(dkdv_kernel<T, ND>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem_kv));
    if (smem_q > kDefaultSmem)
        SRLM_CUDA_TRY(cudaFuncSetAttribute(dq_kernel<T, ND>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem_q));
    dim3 grid_kv((p.max_seq + kKeyTile - 1) / kKeyTile, p.nkv, p.B);
    dkdv_kernel<T, ND><<<grid_kv, kWarps * 32, smem_kv, stream>>>(p, (T *)dk->data, dk->stride, (T *)dv->data,
                                                                 dv->stride, lse, dvec);
    SRLM_CUDA_TRY(cudaGetLastError());
    if (p.T == 0) return SRLM_OK; /* no query rows: dk, dv are all zeros */
    dim3 grid_q((p.T + kRowTile - 1) / kRowTile, p.nh, p.B);
    dq_kernel<T, ND><<<grid_q, kWarps * 32, smem_q, stream>>>(p, (T *)dq->data, dq->stride, lse, dvec);
    SRLM_CUDA_TRY(cudaGetLastError());
    return SRLM_OK;
}

template <typename T>
srlm_status launch_bwd_t(const Params &p, srlm_view *dq, srlm_view *dk, srlm_view *dv, const float *lse,
                         const float *dvec, cudaStream_t stream) {
    switch (lane_chunks(p.hd)) {
    case 2: return launch_bwd<T, 2>(p, dq, dk, dv, lse, dvec, stream);
    case 4: return launch_bwd<T, 4>(p, dq, dk, dv, lse, dvec, stream);
    default: return launch_bwd<T, 8>(p, dq, dk, dv, lse, dvec, stream);
    }
}

/* D = rowsum(dO * O) per (row, head) from the forward's output: one warp per
 * (row, head), the index row * nh + h of the D array; padding rows get 0. */
template <typename T>
__global__ void dvec_kernel(Params p, const T *out, int64_t ldo, float *dvec) {
    const int64_t w = (int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (w >= (int64_t)p.B * p.T * p.nh) return;
    const int h = (int)(w % p.nh);
    const int64_t row = w / p.nh;
    const int b = (int)(row / p.T), t = (int)(row % p.T);
    const T *dout = (const T *)p.dout;
    float sum = 0.0f;
    if (t < p.n_new[b])
        for (int d = lane; d < p.hd; d += 32)
            sum += ld(out[row * ldo + (int64_t)h * p.hd + d]) * ld(dout[row * p.lddo + (int64_t)h * p.hd + d]);
    sum = warp_sum(sum);
    if (lane == 0) dvec[w] = sum;
}

template <typename T>
srlm_status launch_dvec(const Params &p, const srlm_view *out, float *dvec, cudaStream_t stream) {
    const int64_t warps = (int64_t)p.B * p.T * p.nh, per_block = 8;
    dvec_kernel<T><<<(unsigned)((warps + per_block - 1) / per_block), 32 * per_block, 0, stream>>>(
        p, (const T *)out->data, out->stride, dvec);
    SRLM_CUDA_TRY(cudaGetLastError());
    return SRLM_OK;
}

}  // namespace

/* The tensor-core dkdv's head split for this shape (attention_bwd_mma.cu; 1
 * where that path cannot run), and the bytes of its fp32 partials, which the
 * workspace holds after lse and D. */
static int split_of(const srlm_cuda_attn_shape *s) {
    if ((s->head_dim != 64 && s->head_dim != 128) || s->n_kv_heads <= 0 || s->n_heads % s->n_kv_heads != 0)
        return 1;
    return bwd_head_split(s->B, s->max_len > 0 ? s->max_len : s->max_seq, s->n_kv_heads, s->n_heads / s->n_kv_heads);
}
static size_t split_bytes(const srlm_cuda_attn_shape *s, int split) {
    return split > 1 ? 2 * sizeof(float) * (size_t)split * (size_t)s->B * (size_t)s->max_seq *
                           (size_t)s->n_kv_heads * (size_t)s->head_dim
                     : 0;
}

extern "C" size_t srlm_cuda_attention_bwd_workspace(const srlm_cuda_attn_shape *s) {
    return s ? 2 * ws_part(s) + split_bytes(s, split_of(s)) : 0; /* lse, then D, then the split's partials */
}

extern "C" srlm_status srlm_cuda_attention_bwd(srlm_view *dq, srlm_view *dk, srlm_view *dv, const srlm_view *dout,
                                               const srlm_view *q, const srlm_view *k_cache,
                                               const srlm_view *v_cache, const srlm_cuda_attn_shape *s,
                                               const srlm_cuda_attn_saved *saved, void *workspace,
                                               size_t workspace_bytes, void *stream) {
    const char *op = "attention backward";
    SRLM_CHECK(check_args(op, dq, "dq", q, k_cache, v_cache, s));
    const int64_t rows = (int64_t)s->B * s->T;
    const int64_t qcols = (int64_t)s->n_heads * s->head_dim, kvcols = (int64_t)s->n_kv_heads * s->head_dim;
    SRLM_CHECK(check_view(op, "dout", dout, q->dtype, rows, qcols, 0));
    SRLM_CHECK(check_view(op, "dk", dk, q->dtype, k_cache->rows, kvcols, 0));
    SRLM_CHECK(check_view(op, "dv", dv, q->dtype, v_cache->rows, kvcols, 0));
    if (saved) {
        if (!saved->lse)
            return SRLM_ERR(SRLM_BAD_INPUT, "%s: saved state without lse (the forward's lse is required with its output)", op);
        SRLM_CHECK(check_view(op, "saved out", saved->out, q->dtype, rows, qcols, 0));
    }
    const int split = split_of(s); /* once: the size checked is the size used */
    const size_t need = 2 * ws_part(s) + split_bytes(s, split);
    if (workspace_bytes < need || (need > 0 && !workspace))
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: workspace of %zu bytes is too small (expected %zu bytes)", op,
                        workspace ? workspace_bytes : (size_t)0, need);
    if (s->B == 0) return SRLM_OK; /* no slot named: nothing to write */
    cudaStream_t st = (cudaStream_t)stream;
    float *lse = (float *)workspace, *dvec = (float *)((char *)workspace + ws_part(s));

    Params p = make_params(NULL, q, k_cache, v_cache, s);
    p.dout = dout->data;
    p.lddo = dout->stride;
    p.dvec = dvec;
    if (saved) { /* the kernels only read lse */
        p.lse = const_cast<float *>(saved->lse);
        if (q->dtype == SRLM_BF16) SRLM_CHECK(launch_dvec<__nv_bfloat16>(p, saved->out, dvec, st));
        else SRLM_CHECK(launch_dvec<float>(p, saved->out, dvec, st));
    } else {
        p.lse = lse;
        SRLM_CHECK(launch_fwd(p, q->dtype, st));
    }

    if (bwd_mma_eligible(p, q->dtype, dq, dk, dv)) {
        /* the partials' float4 loads need a 16-byte aligned workspace (cudaMalloc's is) */
        void *part = split > 1 && aligned16(workspace) ? (char *)workspace + 2 * ws_part(s) : NULL;
        if (use_sm90(p.hd)) return launch_bwd_sm90(p, dq, dk, dv, part ? split : 1, part, st);
        return launch_bwd_mma(p, dq, dk, dv, part ? split : 1, part, st);
    }
    if (q->dtype == SRLM_BF16) return launch_bwd_t<__nv_bfloat16>(p, dq, dk, dv, p.lse, dvec, st);
    return launch_bwd_t<float>(p, dq, dk, dv, p.lse, dvec, st);
}
