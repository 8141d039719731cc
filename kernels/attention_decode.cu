/* Decode attention (T == 1): one query row per (sequence, head) against a long
 * cache. The keys are split into chunks so that B * n_heads * chunks blocks
 * fill the GPU; each block writes its chunk's (max, sum of exp, unnormalised
 * output) to the workspace, and a combine kernel merges the chunks in chunk
 * order (deterministic). Scalar fp32 math, float or bf16, head_dim <= 256. */
#include "attention_tiles.cuh"

using namespace attn;

namespace {

constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;
constexpr int kTargetBlocks = 2 * 132; /* two blocks per SM of an H100 */
constexpr int kMinChunk = 64;          /* keys; shorter chunks cost more in the combine than they save */
constexpr int kMaxChunk = 2048;        /* keys; bounds the scores kept in shared memory */

struct Split {
    int chunks, chunk_len;
};

/* A pure function of the shape, so the workspace size and the launch agree. */
static Split choose_split(const srlm_cuda_attn_shape *s) {
    const int len = s->max_len > 0 ? s->max_len : 1;
    const long long rows = (long long)s->B * s->n_heads;
    int want = rows > 0 ? (int)((kTargetBlocks + rows - 1) / rows) : 1;
    int by_len = (len + kMinChunk - 1) / kMinChunk;
    int chunks = want < by_len ? want : by_len;
    int at_least = (len + kMaxChunk - 1) / kMaxChunk;
    if (chunks < at_least) chunks = at_least;
    if (chunks < 1) chunks = 1;
    Split sp = {chunks, (len + chunks - 1) / chunks};
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

/* One block per (chunk, head, sequence). Scores: one warp per key (coalesced
 * row read, warp sum); weights in the log2 domain; then P V with threads over
 * columns, and for narrow heads several key subsets summed in a fixed order. */
template <typename T>
__global__ void __launch_bounds__(kThreads)
    decode_partial_kernel(Params p, int chunk_len, int n_chunks, float *part) {
    extern __shared__ float smem[];
    const int hd = p.hd;
    float *qs = smem;             /* hd, pre-scaled */
    float *sc = qs + hd;          /* chunk_len scores, then weights */
    float *obuf = sc + chunk_len; /* kThreads partial outputs */
    float *red = obuf + kThreads; /* kWarps */

    const int b = blockIdx.z, h = blockIdx.y, c = blockIdx.x;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int kvh = h / p.group;
    /* the single new row sits at position n_past and sees keys 0 .. n_past */
    int len = p.n_new[b] > 0 ? p.n_past[b] + 1 : 0;
    len = min(len, n_chunks * chunk_len); /* max_len was too small: stay in bounds */
    const int j0 = c * chunk_len, j1 = min(j0 + chunk_len, len);
    float *out = part + (((int64_t)b * p.nh + h) * n_chunks + c) * (hd + 2);
    if (j0 >= j1) { /* empty chunk: contributes nothing to the combine */
        for (int d = threadIdx.x; d < hd + 2; d += kThreads) out[d] = d == 0 ? -INFINITY : 0.0f;
        return;
    }
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
    __syncthreads();
    const int n = j1 - j0;
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < n; j += kThreads) mx = fmaxf(mx, sc[j]);
    mx = block_reduce<true>(mx, red);
    float sum = 0.0f;
    for (int j = threadIdx.x; j < n; j += kThreads) {
        float w = exp2f(sc[j] - mx);
        sc[j] = w;
        sum += w;
    }
    sum = block_reduce<false>(sum, red); /* also orders the sc writes before the reads below */

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
        out[0] = mx;
        out[1] = sum;
    }
}

/* One block per (head, sequence): rescale every chunk to the global max and
 * add them in chunk order. */
template <typename T>
__global__ void __launch_bounds__(kThreads) decode_combine_kernel(Params p, int n_chunks, const float *part) {
    const int b = blockIdx.y, h = blockIdx.x, hd = p.hd;
    const float *pr = part + ((int64_t)b * p.nh + h) * n_chunks * (hd + 2);
    float mx = -INFINITY;
    for (int c = 0; c < n_chunks; c++) mx = fmaxf(mx, pr[c * (hd + 2)]);
    const float m_use = mx == -INFINITY ? 0.0f : mx;
    float sum = 0.0f;
    for (int c = 0; c < n_chunks; c++) sum += pr[c * (hd + 2) + 1] * exp2f(pr[c * (hd + 2)] - m_use);
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f; /* n_new == 0: a zero row */
    T *out = (T *)p.out + (int64_t)b * p.T * p.ldo + (int64_t)h * hd;
    for (int d = threadIdx.x; d < hd; d += kThreads) {
        float acc = 0.0f;
        for (int c = 0; c < n_chunks; c++) acc += pr[c * (hd + 2) + 2 + d] * exp2f(pr[c * (hd + 2)] - m_use);
        out[d] = from_f32<T>(acc * inv);
    }
}

template <typename T>
srlm_status launch_decode(const Params &p, Split sp, float *part, cudaStream_t stream) {
    const size_t smem = sizeof(float) * ((size_t)p.hd + sp.chunk_len + kThreads + kWarps);
    if (smem > kDefaultSmem) /* opt in above the default 48 KB per block */
        SRLM_CUDA_TRY(cudaFuncSetAttribute(decode_partial_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    dim3 grid(sp.chunks, p.nh, p.B);
    decode_partial_kernel<T><<<grid, kThreads, smem, stream>>>(p, sp.chunk_len, sp.chunks, part);
    SRLM_CUDA_TRY(cudaGetLastError());
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
    if (q->dtype == SRLM_BF16) return launch_decode<__nv_bfloat16>(p, sp, (float *)workspace, (cudaStream_t)stream);
    return launch_decode<float>(p, sp, (float *)workspace, (cudaStream_t)stream);
}
