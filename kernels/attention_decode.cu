/* Decode attention (T == 1): one query row per (sequence, head) against a long
 * cache. The keys are split into chunks so that B * n_heads * chunks blocks
 * fill the GPU; each block writes its chunk's (max, sum of exp, unnormalised
 * output) to the workspace, and a combine kernel merges the chunks in chunk
 * order (deterministic). fp32 math, float or bf16 storage, head_dim <= 256.
 *
 * Two partial kernels, the same split and workspace (the split is a pure
 * function of the shape; which kernel runs depends on the views):
 * - vector path (head_dim a multiple of 16 bytes, q/k/v rows 16-byte aligned):
 *   a group of head_dim/8 (bf16) or head_dim/4 (fp32) lanes per key, one
 *   16-byte load per lane, 4 keys per group in flight (2 keys of two vectors
 *   for fp32 heads wider than 128): 64 bytes of K or V outstanding per thread;
 * - scalar path for everything else: one warp per key, 2- or 4-byte loads.
 *
 * Expected on an H100 (batch 1, 32 heads of 128, bf16): decode reads 512 bytes
 * of K+V per key and head for ~2 FLOP per byte, so the bound is the cache read
 * once at copy bandwidth. The split aims at 8 blocks per SM in one wave (the
 * launch bounds keep the vector kernel at <= 64 registers so that 8 fit; with
 * 7 fitting, the 1.14-wave tail cost ~15%), i.e. ~64 KB in flight per SM,
 * above the ~30 KB that 3 TB/s x ~1.3 us loaded latency needs. So >= 65% of
 * copy bandwidth from ctx 4096 and ~90% from 16k; at 2048 (34 MB, ~11 us at
 * copy speed) the second launch and the combine weigh: ~50%. Measured (H100,
 * bench_kernels): 52 / 67 / 81 / 91 / 96% of copy bandwidth at ctx 2k / 4k /
 * 8k / 16k / 32k (0.021 ms at 2k, 0.185 ms at 32k), against 8-16% for the
 * scalar kernel. GQA groups re-read their K/V once per query head (mostly
 * from L2): 43% at 32/8 heads, ctx 16k. */
#include "attention_tiles.cuh"

using namespace attn;

namespace {

constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;
constexpr int kBlocksPerSM = 8;        /* vector kernel: resident blocks per SM, ~64 KB in flight */
constexpr int kMinChunk = 64;          /* keys; shorter chunks cost more in the combine than they save */
constexpr int kMaxChunk = 2048;        /* keys; bounds the scores kept in shared memory */
constexpr int kChunkAlign = 64;        /* keys; whole steps of the vector loop (32 keys at hd 128 bf16) */
constexpr int kUnroll = 4;             /* 16-byte loads in flight per thread (8 took 72 registers) */
constexpr int kVecFloats = 8;          /* fp32 values per lane in the vector path, at most (R * 16 bytes of T) */

struct Split { int chunks, chunk_len; };

/* The current device's multiprocessor count (132 on an H100 SXM, 108 on an
 * A100), read once per device; 132 if it cannot be read. */
static int sm_count(void) { return device_attr<cudaDevAttrMultiProcessorCount>(132); }

/* A pure function of the shape and the device, so the workspace size and the
 * launch agree; both partial kernels use it. One wave of kBlocksPerSM blocks
 * on every multiprocessor (a second, partial wave cost ~15% on an H100). */
static Split choose_split(const srlm_cuda_attn_shape *s) {
    const int len = s->max_len > 0 ? s->max_len : 1;
    const long long rows = (long long)s->B * s->n_heads, target = (long long)kBlocksPerSM * sm_count();
    int want = rows > 0 ? (int)((target + rows - 1) / rows) : 1;
    int by_len = (len + kMinChunk - 1) / kMinChunk;
    int chunks = want < by_len ? want : by_len;
    int at_least = (len + kMaxChunk - 1) / kMaxChunk;
    if (chunks < at_least) chunks = at_least;
    if (chunks < 1) chunks = 1;
    int chunk_len = (len + chunks - 1) / chunks; /* <= kMaxChunk, a multiple of kChunkAlign */
    chunk_len = (chunk_len + kChunkAlign - 1) / kChunkAlign * kChunkAlign;
    Split sp = {(len + chunk_len - 1) / chunk_len, chunk_len};
    return sp;
}

static size_t partial_floats(const srlm_cuda_attn_shape *s) { return (size_t)s->head_dim + 2; }

/* Block-wide reduction of one value per thread in a fixed tree (max or sum). */
template <bool kMax>
__device__ float block_reduce(float x, float *red) {
    x = kMax ? warp_max(x) : warp_sum(x);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    __syncthreads(); /* red may still be read from a previous call */
    if (lane == 0) red[warp] = x;
    __syncthreads();
    float r = red[0];
    for (int w = 1; w < kWarps; w++) r = kMax ? fmaxf(r, red[w]) : r + red[w];
    return r;
}

/* Where a block's chunk starts and ends, and its slot in the workspace. */
struct Chunk { int j0, j1; float *out; };
__device__ __forceinline__ Chunk block_chunk(const Params &p, int chunk_len, int n_chunks, float *part) {
    const int b = blockIdx.z, h = blockIdx.y, c = blockIdx.x;
    /* the single new row sits at position n_past and sees keys 0 .. n_past */
    int len = p.n_new[b] > 0 ? p.n_past[b] + 1 : 0;
    /* n_past inconsistent with max_len (the launch API does not read the device
     * lengths back): stay within the chunks and the slot */
    len = min(len, min(n_chunks * chunk_len, p.max_seq));
    Chunk ch;
    ch.j0 = c * chunk_len;
    ch.j1 = min(ch.j0 + chunk_len, len);
    ch.out = part + (((int64_t)b * p.nh + h) * n_chunks + c) * (p.hd + 2);
    if (ch.j0 >= ch.j1) /* empty chunk: contributes nothing to the combine */
        for (int d = threadIdx.x; d < p.hd + 2; d += kThreads) ch.out[d] = d == 0 ? -INFINITY : 0.0f;
    return ch;
}

/* Scores sc[0 .. n) (log2 domain) -> weights exp2(sc - max) in place; returns
 * (max, sum of the weights). Ends with a barrier after the weight writes. */
__device__ float2 softmax_chunk(float *sc, int n, float *red) {
    __syncthreads(); /* the score writes */
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < n; j += kThreads) mx = fmaxf(mx, sc[j]);
    mx = block_reduce<true>(mx, red);
    float sum = 0.0f;
    for (int j = threadIdx.x; j < n; j += kThreads) {
        float w = exp2f(sc[j] - mx);
        sc[j] = w;
        sum += w;
    }
    sum = block_reduce<false>(sum, red); /* its second barrier orders the sc writes before the reads */
    return make_float2(mx, sum);
}

/* Scalar path, one block per (chunk, head, sequence). Scores: one warp per key
 * (coalesced row read, warp sum); then P V with threads over columns, and for
 * narrow heads several key subsets summed in a fixed order. */
template <typename T>
__global__ void __launch_bounds__(kThreads)
    decode_partial_kernel(Params p, int chunk_len, int n_chunks, float *part) {
    extern __shared__ float smem[];
    const int hd = p.hd;
    float *qs = smem;             /* hd, pre-scaled */
    float *sc = qs + hd;          /* chunk_len scores, then weights */
    float *obuf = sc + chunk_len; /* kThreads partial outputs */
    float *red = obuf + kThreads; /* kWarps */

    const int b = blockIdx.z, h = blockIdx.y;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int kvh = h / p.group;
    const Chunk ch = block_chunk(p, chunk_len, n_chunks, part);
    if (ch.j0 >= ch.j1) return;
    const int j0 = ch.j0, j1 = ch.j1;
    float *out = ch.out;
    const T *q = (const T *)p.q, *k = (const T *)p.k, *v = (const T *)p.v;
    const int64_t kbase = cache_row(p, b, 0);
    for (int d = threadIdx.x; d < hd; d += kThreads)
        qs[d] = ld(q[(int64_t)b * p.T * p.ldq + (int64_t)h * hd + d]) * p.scale_log2;
    __syncthreads();

    for (int j = j0 + warp; j < j1; j += kWarps) {
        const T *kr = k + (kbase + j) * p.ldk + (int64_t)kvh * hd;
        float s = 0.0f;
        for (int d = lane; d < hd; d += 32) s += qs[d] * ld(kr[d]);
        s = warp_sum(s);
        if (lane == 0) sc[j - j0] = s;
    }
    const int n = j1 - j0;
    const float2 ms = softmax_chunk(sc, n, red);

    if (hd <= kThreads) {
        const int split = kThreads / hd; /* key subsets, each summed by hd threads */
        if (threadIdx.x < split * hd) {
            const int d = threadIdx.x % hd, sub = threadIdx.x / hd;
            float acc = 0.0f;
            for (int j = sub; j < n; j += split)
                acc += sc[j] * ld(v[(kbase + j0 + j) * p.ldv + (int64_t)kvh * hd + d]);
            obuf[threadIdx.x] = acc;
        }
        __syncthreads();
        if (threadIdx.x < hd) {
            float acc = 0.0f;
            for (int sub = 0; sub < split; sub++) acc += obuf[sub * hd + threadIdx.x];
            out[2 + threadIdx.x] = acc;
        }
    } else {
        for (int d = threadIdx.x; d < hd; d += kThreads) {
            float acc = 0.0f;
            for (int j = 0; j < n; j++) acc += sc[j] * ld(v[(kbase + j0 + j) * p.ldv + (int64_t)kvh * hd + d]);
            out[2 + d] = acc;
        }
    }
    if (threadIdx.x == 0) {
        out[0] = ms.x;
        out[1] = ms.y;
    }
}

/* ---- vector path ---- */

/* 16 bytes of T as fp32: 8 bf16 or 4 floats. */
template <typename T> __device__ __forceinline__ void unpack16(uint4 u, float *x);
template <> __device__ __forceinline__ void unpack16<float>(uint4 u, float *x) {
    x[0] = __uint_as_float(u.x), x[1] = __uint_as_float(u.y);
    x[2] = __uint_as_float(u.z), x[3] = __uint_as_float(u.w);
}
template <> __device__ __forceinline__ void unpack16<__nv_bfloat16>(uint4 u, float *x) {
    const uint32_t w[4] = {u.x, u.y, u.z, u.w};
    for (int i = 0; i < 4; i++) { /* the lower column is the low half */
        x[2 * i] = bf16_bits_to_f32(w[i]);
        x[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
    }
}

__device__ __forceinline__ uint4 ld16(const void *ptr) { return __ldg(reinterpret_cast<const uint4 *>(ptr)); }

/* Lanes per key: a power of two covering the row's nv 16-byte vectors (so the
 * shuffle tree stays inside the group), at most a warp. */
__device__ __forceinline__ int group_lanes(int nv) {
    int g = 1;
    while (g < nv && g < 32) g *= 2;
    return g;
}

/* One block per (chunk, head, sequence). The block's threads form kThreads/G
 * groups of G lanes; group g takes keys j0 + g, j0 + g + ng, ... and lane li
 * the vectors li, li + G (R of them), for K (scores) and V (outputs) alike.
 * Each loop step issues all kUnroll/R keys' loads before using any. */
template <typename T, int R>
__global__ void __launch_bounds__(kThreads, kBlocksPerSM)
    decode_partial_vec_kernel(Params p, int chunk_len, int n_chunks, float *part) {
    constexpr int V = 16 / sizeof(T); /* elements per vector */
    constexpr int U = kUnroll / R;    /* keys per group and step */
    static_assert(R * V <= kVecFloats, "a lane holds at most kVecFloats values");
    extern __shared__ float smem[];
    const int hd = p.hd, nv = hd / V, G = group_lanes(nv), ng = kThreads / G;
    const int li = threadIdx.x % G, grp = threadIdx.x / G;
    float *sc = smem;                          /* chunk_len scores, then weights */
    float *obuf = sc + chunk_len;              /* ng x hd partial outputs (<= kThreads * kVecFloats) */
    float *red = obuf + kThreads * kVecFloats; /* kWarps */

    const int b = blockIdx.z, h = blockIdx.y, kvh = h / p.group;
    const Chunk ch = block_chunk(p, chunk_len, n_chunks, part);
    if (ch.j0 >= ch.j1) return;
    const int j0 = ch.j0, j1 = ch.j1;
    const int64_t kbase = cache_row(p, b, 0);
    const T *kh = (const T *)p.k + kbase * p.ldk + (int64_t)kvh * hd; /* key j's row: kh + j * ldk */
    const T *vh = (const T *)p.v + kbase * p.ldv + (int64_t)kvh * hd;
    const T *qh = (const T *)p.q + (int64_t)b * p.T * p.ldq + (int64_t)h * hd;

    float qf[R][V]; /* this lane's slice of q, pre-scaled; 0 on idle lanes */
    for (int r = 0; r < R; r++) {
        const int vi = li + r * G;
        const uint4 u = vi < nv ? ld16(qh + vi * V) : make_uint4(0, 0, 0, 0);
        unpack16<T>(u, qf[r]);
        for (int e = 0; e < V; e++) qf[r][e] *= p.scale_log2;
    }

    /* Block-uniform loops: every lane runs every shuffle; keys past j1 load
     * nothing and are not stored. */
    for (int base = j0; base < j1; base += ng * U) {
        uint4 kv[U][R];
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int j = base + u * ng + grp;
#pragma unroll
            for (int r = 0; r < R; r++) {
                const int vi = li + r * G;
                kv[u][r] = j < j1 && vi < nv ? ld16(kh + (int64_t)j * p.ldk + vi * V) : make_uint4(0, 0, 0, 0);
            }
        }
#pragma unroll
        for (int u = 0; u < U; u++) {
            float s = 0.0f;
#pragma unroll
            for (int r = 0; r < R; r++) {
                float x[V];
                unpack16<T>(kv[u][r], x);
#pragma unroll
                for (int e = 0; e < V; e++) s = fmaf(qf[r][e], x[e], s);
            }
            for (int off = G / 2; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
            const int j = base + u * ng + grp;
            if (li == 0 && j < j1) sc[j - j0] = s;
        }
    }
    const float2 ms = softmax_chunk(sc, j1 - j0, red);

    float acc[R][V] = {};
    for (int base = j0; base < j1; base += ng * U) {
        uint4 vv[U][R];
        float w[U];
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int j = base + u * ng + grp;
            w[u] = j < j1 ? sc[j - j0] : 0.0f;
#pragma unroll
            for (int r = 0; r < R; r++) {
                const int vi = li + r * G;
                vv[u][r] = j < j1 && vi < nv ? ld16(vh + (int64_t)j * p.ldv + vi * V) : make_uint4(0, 0, 0, 0);
            }
        }
#pragma unroll
        for (int u = 0; u < U; u++)
#pragma unroll
            for (int r = 0; r < R; r++) {
                float x[V];
                unpack16<T>(vv[u][r], x);
#pragma unroll
                for (int e = 0; e < V; e++) acc[r][e] = fmaf(w[u], x[e], acc[r][e]);
            }
    }
    /* the ng key subsets, summed in group order */
    for (int r = 0; r < R; r++) {
        const int vi = li + r * G;
        if (vi < nv)
            for (int e = 0; e < V; e++) obuf[grp * hd + vi * V + e] = acc[r][e];
    }
    __syncthreads();
    for (int d = threadIdx.x; d < hd; d += kThreads) {
        float o = 0.0f;
        for (int g = 0; g < ng; g++) o += obuf[g * hd + d];
        ch.out[2 + d] = o;
    }
    if (threadIdx.x == 0) {
        ch.out[0] = ms.x;
        ch.out[1] = ms.y;
    }
}

/* One block per (head, sequence): rescale every chunk to the global max and
 * add them in chunk order, kThreads chunks' weights at a time through shared
 * memory (loads of different chunks independent, so many are in flight). */
template <typename T>
__global__ void __launch_bounds__(kThreads) decode_combine_kernel(Params p, int n_chunks, const float *part) {
    __shared__ float wt[kThreads], lt[kThreads], red[kWarps];
    const int b = blockIdx.y, h = blockIdx.x, hd = p.hd, stride = hd + 2;
    const float *pr = part + ((int64_t)b * p.nh + h) * n_chunks * stride;
    float mx = -INFINITY;
    for (int c = threadIdx.x; c < n_chunks; c += kThreads) mx = fmaxf(mx, pr[c * stride]);
    mx = block_reduce<true>(mx, red);
    const float m_use = mx == -INFINITY ? 0.0f : mx;
    constexpr int kCols = kMaxHeadDim / kThreads;
    float sum = 0.0f, acc[kCols] = {};
    for (int c0 = 0; c0 < n_chunks; c0 += kThreads) {
        const int c = c0 + threadIdx.x;
        if (c < n_chunks) {
            const float w = exp2f(pr[c * stride] - m_use); /* empty chunk: exp2(-inf) = 0 */
            wt[threadIdx.x] = w;
            lt[threadIdx.x] = pr[c * stride + 1] * w;
        }
        __syncthreads();
        const int nc = min(kThreads, n_chunks - c0);
        const float *pc = pr + (int64_t)c0 * stride + 2;
#pragma unroll 8
        for (int i = 0; i < nc; i++) {
            sum += lt[i]; /* every thread, the same order: the same sum */
#pragma unroll
            for (int t = 0; t < kCols; t++) {
                const int d = threadIdx.x + t * kThreads;
                if (d < hd) acc[t] += pc[i * stride + d] * wt[i];
            }
        }
        __syncthreads(); /* before the next tile overwrites wt and lt */
    }
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f; /* n_new == 0: a zero row */
    T *out = (T *)p.out + (int64_t)b * p.T * p.ldo + (int64_t)h * hd;
#pragma unroll
    for (int t = 0; t < kCols; t++) {
        const int d = threadIdx.x + t * kThreads;
        if (d < hd) out[d] = from_f32<T>(acc[t] * inv);
    }
}

/* q, k and v rows start on 16-byte boundaries and hold whole vectors. */
static bool vector_path(const srlm_view *q, const srlm_view *k, const srlm_view *v, const srlm_cuda_attn_shape *s) {
    const int64_t es = q->dtype == SRLM_BF16 ? 2 : 4;
    const srlm_view *views[3] = {q, k, v};
    if ((s->head_dim * es) % 16 != 0) return false;
    for (int i = 0; i < 3; i++)
        if (!aligned16(views[i]->data) || (views[i]->stride * es) % 16 != 0) return false;
    return true;
}

template <typename Kernel>
srlm_status launch_partial(Kernel kernel, size_t smem, const Params &p, Split sp, float *part, cudaStream_t stream) {
    if (smem > kDefaultSmem) /* opt in above the default 48 KB per block */
        SRLM_CUDA_TRY(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    kernel<<<dim3(sp.chunks, p.nh, p.B), kThreads, smem, stream>>>(p, sp.chunk_len, sp.chunks, part);
    SRLM_CUDA_TRY(cudaGetLastError());
    return SRLM_OK;
}

template <typename T>
srlm_status launch_decode(const Params &p, Split sp, bool vec, float *part, cudaStream_t stream) {
    constexpr int kMaxR = sizeof(T) == 4 ? 2 : 1; /* fp32 rows over 32 vectors: two per lane */
    if (!vec) {
        const size_t smem = sizeof(float) * ((size_t)p.hd + sp.chunk_len + kThreads + kWarps);
        SRLM_CHECK(launch_partial(decode_partial_kernel<T>, smem, p, sp, part, stream));
    } else {
        const size_t smem = sizeof(float) * ((size_t)sp.chunk_len + kThreads * kVecFloats + kWarps);
        if (p.hd * sizeof(T) > 32 * 16)
            SRLM_CHECK(launch_partial(decode_partial_vec_kernel<T, kMaxR>, smem, p, sp, part, stream));
        else
            SRLM_CHECK(launch_partial(decode_partial_vec_kernel<T, 1>, smem, p, sp, part, stream));
    }
    decode_combine_kernel<T><<<dim3(p.nh, p.B), kThreads, 0, stream>>>(p, sp.chunks, part);
    SRLM_CUDA_TRY(cudaGetLastError());
    return SRLM_OK;
}

}  // namespace

extern "C" size_t srlm_cuda_attention_decode_workspace(const srlm_cuda_attn_shape *s) {
    if (!s || s->B <= 0 || s->n_heads <= 0 || s->head_dim <= 0) return 0;
    Split sp = choose_split(s);
    return sizeof(float) * (size_t)s->B * (size_t)s->n_heads * (size_t)sp.chunks * partial_floats(s);
}

extern "C" srlm_status srlm_cuda_attention_decode(srlm_view *out, const srlm_view *q, const srlm_view *k_cache,
                                                  const srlm_view *v_cache, const srlm_cuda_attn_shape *s,
                                                  void *workspace, size_t workspace_bytes, void *stream) {
    const char *op = "attention decode";
    SRLM_CHECK(check_args(op, out, "out", q, k_cache, v_cache, s));
    if (s->T != 1) return SRLM_ERR(SRLM_BAD_INPUT, "%s: T is %d, expected 1 (one new row per sequence)", op, s->T);
    const size_t need = srlm_cuda_attention_decode_workspace(s);
    if (workspace_bytes < need || (need > 0 && !workspace))
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: workspace of %zu bytes is too small (expected %zu bytes)", op,
                        workspace ? workspace_bytes : (size_t)0, need);
    if (s->B == 0) return SRLM_OK;
    Params p = make_params(out, q, k_cache, v_cache, s);
    Split sp = choose_split(s);
    const bool vec = vector_path(q, k_cache, v_cache, s);
    if (q->dtype == SRLM_BF16)
        return launch_decode<__nv_bfloat16>(p, sp, vec, (float *)workspace, (cudaStream_t)stream);
    return launch_decode<float>(p, sp, vec, (float *)workspace, (cudaStream_t)stream);
}
