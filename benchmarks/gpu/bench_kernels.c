/* Times srlm's CUDA kernels with CUDA events (warm-up, then the median of N
 * individually timed calls) and prints one TSV table on stdout:
 *
 *   impl kernel dtype shape ms value unit ref ref_value pct_of_ref
 *
 * 1. memcpy: a 1 GiB cudaMemcpyDeviceToDevice; GB/s counts bytes read + written.
 *    This is the bandwidth ceiling the memory-bound rows below are held to.
 * 2. attention forward / backward (kernels/attention.h), bf16, head_dim 128,
 *    causal, no GQA, B*S = 16384 tokens and 16 heads so the GPU is busy at every
 *    seq (512 .. 4096); and the 1.1B model's shape (bench_model --config 1b:
 *    B 4, S 1024, 32 heads of 64 sharing 4 KV heads). Causal FLOPs as
 *    FlashAttention counts them (GQA does not change them):
 *    fwd = 4*B*H*S*S*D / 2, bwd = 2.5 * fwd, fwd_bwd = 3.5 * fwd.
 *    Packed sequences (training's layout: one call, each sequence attending
 *    within itself; shapes named P<n>): the 1.1B shape's four 1024-token
 *    sequences packed (against its B4 row: what the per-row bounds cost) and
 *    16 uneven ones of 512 .. 1472 tokens at head_dim 128; FLOPs summed over
 *    the sequences.
 * 3. log-prob forward (srlm_cuda_row_logsumexp_target: one read of the logits)
 *    and backward (srlm_cuda_logprob_backward: read + write in place) on
 *    (8192 x 32000) fp32 and bf16 logits; GB/s over those bytes vs memcpy.
 * 4. decode attention (srlm_cuda_attention_decode) at batch 1, 32 heads of 128
 *    (Llama-2-7B), contexts 2k .. 32k, bf16: GB/s of reading the KV cache once,
 *    vs memcpy (the bound: the cache read once at copy bandwidth).
 *
 * Inputs are random (never zeros: they can run faster than real data), and
 * inputs that fit in L2 are rotated among several copies. Usage:
 *   bench_kernels [--quick]      (--quick: fewer repeats, for a smoke run) */
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attention.h"
#include "core/dtype.h"
#include "cuda_check.h"
#include "logprob.h"

static int failures = 0;

#define CUDA_OK(call)                                                                          \
    do {                                                                                       \
        cudaError_t e_ = (call);                                                               \
        if (e_ != cudaSuccess) {                                                               \
            fprintf(stderr, "bench_kernels: %s: %s (%s:%d)\n", #call, cudaGetErrorString(e_), \
                    __FILE__, __LINE__);                                                       \
            exit(1);                                                                           \
        }                                                                                      \
    } while (0)

/* A kernel launch API's status: on failure say which and go on with the others. */
static int srlm_ok(srlm_status st, const char *what) {
    if (st == SRLM_OK) return 1;
    fprintf(stderr, "bench_kernels: %s failed: %s\n", what, srlm_last_error());
    failures++;
    return 0;
}

static void *dalloc(size_t bytes) {
    void *p = NULL;
    CUDA_OK(cudaMalloc(&p, bytes));
    return p;
}

/* Uniform in [-scale, scale) from a 64-bit LCG: fast enough for a GiB on the host. */
static void fill_random(void *dev, size_t n, srlm_dtype dt, uint64_t seed, float scale) {
    const size_t chunk = (size_t)1 << 22;
    const size_t esz = srlm_dtype_size(dt);
    void *host = malloc(chunk * esz);
    uint64_t s = seed * 6364136223846793005ull + 1442695040888963407ull;
    for (size_t off = 0; off < n; off += chunk) {
        size_t m = n - off < chunk ? n - off : chunk;
        for (size_t i = 0; i < m; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            float x = scale * (2.0f * (float)(s >> 40) / 16777216.0f - 1.0f);
            if (dt == SRLM_BF16) ((uint16_t *)host)[i] = srlm_f32_to_bf16(x);
            else ((float *)host)[i] = x;
        }
        CUDA_OK(cudaMemcpy((char *)dev + off * esz, host, m * esz, cudaMemcpyHostToDevice));
    }
    free(host);
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* The median in ms of `reps` calls of fn(ctx, i) (i = call number, for rotating
 * inputs), each between its own pair of events, after `warm` untimed calls.
 * NAN when a call failed. */
typedef int (*bench_fn)(void *ctx, int i);
static float time_median(bench_fn fn, void *ctx, int warm, int reps) {
    for (int i = 0; i < warm; i++)
        if (!fn(ctx, i)) return NAN;
    CUDA_OK(cudaDeviceSynchronize());
    cudaEvent_t *ev = malloc(2 * (size_t)reps * sizeof *ev);
    float *ms = malloc((size_t)reps * sizeof *ms);
    for (int i = 0; i < 2 * reps; i++) CUDA_OK(cudaEventCreate(&ev[i]));
    int ok = 1;
    for (int i = 0; i < reps && ok; i++) {
        CUDA_OK(cudaEventRecord(ev[2 * i], 0));
        ok = fn(ctx, warm + i);
        CUDA_OK(cudaEventRecord(ev[2 * i + 1], 0));
    }
    CUDA_OK(cudaDeviceSynchronize());
    CUDA_OK(cudaGetLastError());
    for (int i = 0; i < reps && ok; i++) CUDA_OK(cudaEventElapsedTime(&ms[i], ev[2 * i], ev[2 * i + 1]));
    float med = NAN;
    if (ok) {
        qsort(ms, (size_t)reps, sizeof *ms, cmp_float);
        med = reps % 2 ? ms[reps / 2] : 0.5f * (ms[reps / 2 - 1] + ms[reps / 2]);
    }
    for (int i = 0; i < 2 * reps; i++) cudaEventDestroy(ev[i]);
    free(ev);
    free(ms);
    return med;
}

static void row(const char *kernel, const char *dtype, const char *shape, float ms, double value,
                const char *unit, const char *ref, double ref_value) {
    printf("srlm\t%s\t%s\t%s\t%.4f\t%.2f\t%s\t%s\t%.2f\t%.1f\n", kernel, dtype, shape, (double)ms, value, unit,
           ref, ref_value, ref_value > 0 ? 100.0 * value / ref_value : NAN);
    fflush(stdout);
}

/* ---- 1. device-to-device copy ---- */
typedef struct {
    void *dst, *src;
    size_t bytes;
} copy_ctx;
static int run_copy(void *p, int i) {
    copy_ctx *c = p;
    (void)i;
    return cudaMemcpyAsync(c->dst, c->src, c->bytes, cudaMemcpyDeviceToDevice, 0) == cudaSuccess;
}

static double bench_copy(int reps) {
    copy_ctx c = {.bytes = (size_t)1 << 30};
    c.src = dalloc(c.bytes);
    c.dst = dalloc(c.bytes);
    fill_random(c.src, c.bytes / 4, SRLM_F32, 1, 1.0f);
    float ms = time_median(run_copy, &c, 3, reps);
    double gbps = 2.0 * (double)c.bytes / (ms * 1e-3) / 1e9;
    row("memcpy_d2d", "-", "1GiB", ms, gbps, "GB/s", "-", 0);
    cudaFree(c.src);
    cudaFree(c.dst);
    return gbps;
}

/* ---- 2. attention forward and backward (prefill / training shapes) ---- */
typedef struct {
    srlm_view q, k, v, out, dout, dq, dk, dv;
    srlm_cuda_attn_shape s;
    float *lse;
    void *ws;
    size_t ws_bytes;
} attn_ctx;
static int run_attn_fwd(void *p, int i) {
    attn_ctx *c = p;
    (void)i;
    return srlm_ok(srlm_cuda_attention_fwd(&c->out, &c->q, &c->k, &c->v, &c->s, c->lse, NULL), "attention_fwd");
}
/* the backward given the forward's out and lse, as PyTorch's peer runs it */
static int run_attn_bwd(void *p, int i) {
    attn_ctx *c = p;
    (void)i;
    srlm_cuda_attn_saved saved = {&c->out, c->lse};
    return srlm_ok(srlm_cuda_attention_bwd(&c->dq, &c->dk, &c->dv, &c->dout, &c->q, &c->k, &c->v, &c->s, &saved,
                                           c->ws, c->ws_bytes, NULL),
                   "attention_bwd");
}
/* the backward that recomputes lse and D itself (no saved state) */
static int run_attn_bwd_recompute(void *p, int i) {
    attn_ctx *c = p;
    (void)i;
    return srlm_ok(srlm_cuda_attention_bwd(&c->dq, &c->dk, &c->dv, &c->dout, &c->q, &c->k, &c->v, &c->s, NULL,
                                           c->ws, c->ws_bytes, NULL),
                   "attention_bwd");
}

/* n sequences of len[i] tokens, H query heads sharing KV key/value heads of D:
 * B = n sequences of len[0] tokens each (all equal), or, packed, one call
 * over their sum with each sequence's per-row bounds. */
static void bench_attention_seqs(int n, const int *len, int packed, int H, int KV, int D, int reps) {
    int tokens = 0, longest = 0;
    double fwd_flop = 0; /* causal: 4 H S^2 D / 2 per sequence */
    for (int i = 0; i < n; i++) {
        tokens += len[i];
        longest = len[i] > longest ? len[i] : longest;
        fwd_flop += 4.0 * H * (double)len[i] * len[i] * D / 2.0;
    }
    const int B = packed ? 1 : n, S = packed ? tokens : len[0];
    attn_ctx c;
    memset(&c, 0, sizeof c);
    int *host = malloc((3 * (size_t)B + 2 * (size_t)tokens + (size_t)n + 1) * sizeof(int));
    int *dev = dalloc((3 * (size_t)B + 2 * (size_t)tokens) * sizeof(int));
    for (int b = 0; b < B; b++) {
        host[b] = b;              /* slot */
        host[B + b] = 0;          /* n_past */
        host[2 * B + b] = S;      /* n_new */
    }
    int *bounds = host + 3 * B, *off = bounds + 2 * tokens;
    off[0] = 0;
    for (int i = 0; i < n; i++) off[i + 1] = off[i] + len[i];
    if (packed) srlm_cuda_attn_seg_bounds(off, n, tokens, bounds, bounds + tokens);
    CUDA_OK(cudaMemcpy(dev, host, (3 * (size_t)B + (packed ? 2 * (size_t)tokens : 0)) * sizeof(int),
                       cudaMemcpyHostToDevice));
    c.s = (srlm_cuda_attn_shape){.B = B, .T = S, .n_heads = H, .n_kv_heads = KV, .head_dim = D, .max_seq = S,
                                 .slot = dev, .n_past = dev + B, .n_new = dev + 2 * B, .max_len = S,
                                 .seg_lo = packed ? dev + 3 * B : NULL, .seg_hi = packed ? dev + 3 * B + tokens : NULL};
    srlm_view *views[] = {&c.q, &c.k, &c.v, &c.out, &c.dout, &c.dq, &c.dk, &c.dv};
    for (int j = 0; j < 8; j++) { /* k, v, dk, dv: KV heads */
        const int heads = (views[j] == &c.k || views[j] == &c.v || views[j] == &c.dk || views[j] == &c.dv) ? KV : H;
        *views[j] = (srlm_view){dalloc((size_t)tokens * heads * D * 2), SRLM_BF16, tokens, (int64_t)heads * D,
                                (int64_t)heads * D};
        fill_random(views[j]->data, (size_t)tokens * heads * D, SRLM_BF16, 10 + (uint64_t)j, 1.0f);
    }
    c.lse = dalloc((size_t)tokens * H * sizeof(float));
    c.ws_bytes = srlm_cuda_attention_bwd_workspace(&c.s);
    c.ws = dalloc(c.ws_bytes ? c.ws_bytes : 1);

    char shape[96], kv[16] = "";
    if (KV != H) snprintf(kv, sizeof kv, "_KV%d", KV);
    if (!packed) snprintf(shape, sizeof shape, "B%d_H%d%s_S%d_D%d_causal", B, H, kv, S, D);
    else if (longest * n == tokens) snprintf(shape, sizeof shape, "P%dx%d_H%d%s_D%d_causal", n, longest, H, kv, D);
    else snprintf(shape, sizeof shape, "P%d_uneven_T%d_H%d%s_D%d_causal", n, tokens, H, kv, D);
    float f = time_median(run_attn_fwd, &c, 3, reps);
    float b = time_median(run_attn_bwd, &c, 3, reps); /* out and lse from the forward just timed */
    float br = time_median(run_attn_bwd_recompute, &c, 3, reps);
    row("attn_fwd", "bf16", shape, f, fwd_flop / (f * 1e-3) / 1e12, "TFLOP/s", "-", 0);
    row("attn_bwd", "bf16", shape, b, 2.5 * fwd_flop / (b * 1e-3) / 1e12, "TFLOP/s", "-", 0);
    row("attn_bwd_recompute", "bf16", shape, br, 2.5 * fwd_flop / (br * 1e-3) / 1e12, "TFLOP/s", "-", 0);
    row("attn_fwd_bwd", "bf16", shape, f + b, 3.5 * fwd_flop / ((f + b) * 1e-3) / 1e12, "TFLOP/s", "-", 0);
    if (srlm_cuda_attention_sm90_available()) { /* an sm_90 device: without ping-pong and mma.sync too, same run */
        srlm_cuda_attention_sm90_pingpong(0);
        float fn = time_median(run_attn_fwd, &c, 3, reps);
        float bn = time_median(run_attn_bwd, &c, 3, reps);
        srlm_cuda_attention_sm90_pingpong(1);
        row("attn_fwd_nopingpong", "bf16", shape, fn, fwd_flop / (fn * 1e-3) / 1e12, "TFLOP/s", "-", 0);
        row("attn_bwd_nopingpong", "bf16", shape, bn, 2.5 * fwd_flop / (bn * 1e-3) / 1e12, "TFLOP/s", "-", 0);
        const char *no_overlap = getenv("SRLM_CUDA_ATTN_OVERLAP"); /* "0": it failed its test (run.sh) */
        if (!(no_overlap && !strcmp(no_overlap, "0"))) {
            srlm_cuda_attention_sm90_overlap(1); /* each tile's scores under the last tile's weighted sum */
            float fo = time_median(run_attn_fwd, &c, 3, reps);
            float bo = time_median(run_attn_bwd, &c, 3, reps);
            srlm_cuda_attention_sm90_overlap(0);
            row("attn_fwd_overlap", "bf16", shape, fo, fwd_flop / (fo * 1e-3) / 1e12, "TFLOP/s", "-", 0);
            row("attn_bwd_overlap", "bf16", shape, bo, 2.5 * fwd_flop / (bo * 1e-3) / 1e12, "TFLOP/s", "-", 0);
        }
        srlm_cuda_attention_force_path(SRLM_CUDA_ATTN_PATH_MMA);
        float fm = time_median(run_attn_fwd, &c, 3, reps);
        float bm = time_median(run_attn_bwd, &c, 3, reps);
        srlm_cuda_attention_force_path(SRLM_CUDA_ATTN_PATH_AUTO);
        row("attn_fwd_mma", "bf16", shape, fm, fwd_flop / (fm * 1e-3) / 1e12, "TFLOP/s", "-", 0);
        row("attn_bwd_mma", "bf16", shape, bm, 2.5 * fwd_flop / (bm * 1e-3) / 1e12, "TFLOP/s", "-", 0);
    }
    if (KV < H) { /* GQA: the backward without its head split too, same run (workspace sized for the split) */
        srlm_cuda_attention_bwd_force_split(1);
        float bn = time_median(run_attn_bwd, &c, 3, reps);
        srlm_cuda_attention_bwd_force_split(0);
        row("attn_bwd_nosplit", "bf16", shape, bn, 2.5 * fwd_flop / (bn * 1e-3) / 1e12, "TFLOP/s", "-", 0);
    }
    for (int j = 0; j < 8; j++) cudaFree(views[j]->data);
    cudaFree(c.lse);
    cudaFree(c.ws);
    cudaFree(dev);
    free(host);
}

/* B sequences of S tokens each, one slot apiece */
static void bench_attention(int B, int S, int H, int KV, int D, int reps) {
    int *len = malloc(sizeof(int) * (size_t)B);
    for (int b = 0; b < B; b++) len[b] = S;
    bench_attention_seqs(B, len, 0, H, KV, D, reps);
    free(len);
}

/* ---- 3. log-prob forward and backward ---- */
typedef struct {
    srlm_view logits;
    int *targets;
    float *mx, *se, *tl, *dlogp;
} lp_ctx;
static int run_lp_fwd(void *p, int i) {
    lp_ctx *c = p;
    (void)i;
    return srlm_ok(srlm_cuda_row_logsumexp_target(&c->logits, c->targets, 0, c->mx, c->se, c->tl, NULL),
                   "row_logsumexp_target");
}
static int run_lp_bwd(void *p, int i) {
    lp_ctx *c = p;
    (void)i;
    /* in place: the values drift over the repeats, but the bytes moved do not */
    return srlm_ok(srlm_cuda_logprob_backward(&c->logits, c->mx, c->se, c->targets, 0, c->dlogp, NULL),
                   "logprob_backward");
}

static void bench_logprob(srlm_dtype dt, int rows, int vocab, double copy_gbps, int reps) {
    lp_ctx c;
    const size_t n = (size_t)rows * vocab, esz = srlm_dtype_size(dt);
    c.logits = (srlm_view){dalloc(n * esz), dt, rows, vocab, vocab};
    fill_random(c.logits.data, n, dt, 3, 8.0f);
    int *t = malloc((size_t)rows * sizeof(int));
    float *g = malloc((size_t)rows * sizeof(float));
    for (int r = 0; r < rows; r++) {
        t[r] = (int)(((uint64_t)r * 2654435761u) % (uint64_t)vocab);
        g[r] = -1.0f / (float)rows;
    }
    c.targets = dalloc((size_t)rows * sizeof(int));
    c.dlogp = dalloc((size_t)rows * sizeof(float));
    c.mx = dalloc((size_t)rows * sizeof(float));
    c.se = dalloc((size_t)rows * sizeof(float));
    c.tl = dalloc((size_t)rows * sizeof(float));
    CUDA_OK(cudaMemcpy(c.targets, t, (size_t)rows * sizeof(int), cudaMemcpyHostToDevice));
    CUDA_OK(cudaMemcpy(c.dlogp, g, (size_t)rows * sizeof(float), cudaMemcpyHostToDevice));

    char shape[64];
    snprintf(shape, sizeof shape, "%dx%d", rows, vocab);
    const char *dn = dt == SRLM_BF16 ? "bf16" : "fp32";
    const double bytes = (double)n * esz;
    float f = time_median(run_lp_fwd, &c, 3, reps);
    float b = time_median(run_lp_bwd, &c, 3, reps);
    double fg = bytes / (f * 1e-3) / 1e9, bg = 2.0 * bytes / (b * 1e-3) / 1e9;
    row("logprob_fwd", dn, shape, f, fg, "GB/s", "memcpy_GB/s", copy_gbps);
    row("logprob_bwd", dn, shape, b, bg, "GB/s", "memcpy_GB/s", copy_gbps);
    row("logprob_fwd_bwd", dn, shape, f + b, 3.0 * bytes / ((f + b) * 1e-3) / 1e9, "GB/s", "memcpy_GB/s",
        copy_gbps);
    cudaFree(c.logits.data);
    cudaFree(c.targets);
    cudaFree(c.dlogp);
    cudaFree(c.mx);
    cudaFree(c.se);
    cudaFree(c.tl);
    free(t);
    free(g);
}

/* ---- 4. decode attention at batch 1 ---- */
typedef struct {
    srlm_view q, k, v, out;
    srlm_cuda_attn_shape s;
    const int *slots; /* 0 .. nslots-1 on the device: call i reads slot i % nslots */
    int nslots;
    void *ws;
    size_t ws_bytes;
} dec_ctx;
static int run_decode(void *p, int i) {
    dec_ctx *c = p;
    c->s.slot = c->slots + i % c->nslots;
    return srlm_ok(srlm_cuda_attention_decode(&c->out, &c->q, &c->k, &c->v, &c->s, c->ws, c->ws_bytes, NULL),
                   "attention_decode");
}

static void bench_decode(int ctx_len, double copy_gbps, int reps) {
    const int H = 32, KV = 32, D = 128;
    const double kv_bytes = 2.0 * ctx_len * KV * D * 2; /* k and v, bf16, read once */
    /* rotate among cache slots so that the caches together are well over L2 */
    int nslots = (int)ceil(256e6 / kv_bytes);
    if (nslots < 1) nslots = 1;
    dec_ctx c;
    memset(&c, 0, sizeof c);
    c.nslots = nslots;
    int *host = malloc((size_t)(nslots + 2) * sizeof(int)), *dev = dalloc((size_t)(nslots + 2) * sizeof(int));
    for (int j = 0; j < nslots; j++) host[j] = j;
    host[nslots] = ctx_len - 1; /* n_past */
    host[nslots + 1] = 1;       /* n_new */
    CUDA_OK(cudaMemcpy(dev, host, (size_t)(nslots + 2) * sizeof(int), cudaMemcpyHostToDevice));
    c.slots = dev;
    c.s = (srlm_cuda_attn_shape){.B = 1, .T = 1, .n_heads = H, .n_kv_heads = KV, .head_dim = D,
                                 .max_seq = ctx_len, .slot = dev, .n_past = dev + nslots,
                                 .n_new = dev + nslots + 1, .max_len = ctx_len};
    const size_t cache_rows = (size_t)nslots * ctx_len;
    c.k = (srlm_view){dalloc(cache_rows * KV * D * 2), SRLM_BF16, (int64_t)cache_rows, KV * D, KV * D};
    c.v = (srlm_view){dalloc(cache_rows * KV * D * 2), SRLM_BF16, (int64_t)cache_rows, KV * D, KV * D};
    c.q = (srlm_view){dalloc((size_t)H * D * 2), SRLM_BF16, 1, H * D, H * D};
    c.out = (srlm_view){dalloc((size_t)H * D * 2), SRLM_BF16, 1, H * D, H * D};
    fill_random(c.k.data, cache_rows * KV * D, SRLM_BF16, 21, 1.0f);
    fill_random(c.v.data, cache_rows * KV * D, SRLM_BF16, 22, 1.0f);
    fill_random(c.q.data, (size_t)H * D, SRLM_BF16, 23, 1.0f);
    c.ws_bytes = srlm_cuda_attention_decode_workspace(&c.s);
    c.ws = dalloc(c.ws_bytes ? c.ws_bytes : 1);

    char shape[80];
    snprintf(shape, sizeof shape, "B1_H%d_KV%d_D%d_ctx%d", H, KV, D, ctx_len);
    float ms = time_median(run_decode, &c, 5, reps);
    row("attn_decode", "bf16", shape, ms, kv_bytes / (ms * 1e-3) / 1e9, "GB/s", "memcpy_GB/s", copy_gbps);
    cudaFree(c.k.data);
    cudaFree(c.v.data);
    cudaFree(c.q.data);
    cudaFree(c.out.data);
    cudaFree(c.ws);
    cudaFree(dev);
    free(host);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0); /* every row reaches the TSV, also when a time limit kills the run */
    const int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    if (srlm_cuda_device_count() == 0) {
        fprintf(stderr, "bench_kernels: no GPU on this machine\n");
        return 2;
    }
    struct cudaDeviceProp prop;
    CUDA_OK(cudaGetDeviceProperties(&prop, 0));
    fprintf(stderr, "bench_kernels: %s, %d SMs, %.0f MB L2\n", prop.name, prop.multiProcessorCount,
            prop.l2CacheSize / 1e6);
    const int reps = quick ? 5 : 20;

    printf("impl\tkernel\tdtype\tshape\tms\tvalue\tunit\tref\tref_value\tpct_of_ref\n");
    const double copy_gbps = bench_copy(reps);
    const int seqs[] = {512, 1024, 2048, 4096};
    for (int i = 0; i < 4; i++) bench_attention(16384 / seqs[i], seqs[i], 16, 16, 128, reps);
    bench_attention(4, 1024, 32, 4, 64, reps); /* the 1.1B model's (bench_model --config 1b): GQA, head dim 64 */
    bench_logprob(SRLM_F32, 8192, 32000, copy_gbps, reps);
    bench_logprob(SRLM_BF16, 8192, 32000, copy_gbps, reps);
    const int ctxs[] = {2048, 4096, 8192, 16384, 32768};
    for (int i = 0; i < 5; i++) bench_decode(ctxs[i], copy_gbps, quick ? 10 : 50);
    /* packed attention last: never run on a GPU before 2026-11-27, so a fault
     * here costs no row measured before */
    const int four[4] = {1024, 1024, 1024, 1024};
    bench_attention_seqs(4, four, 1, 32, 4, 64, reps); /* the 1.1B shape packed: the bounds' cost */
    int uneven[16];
    for (int i = 0; i < 16; i++) uneven[i] = 512 + 64 * ((i * 7) % 16); /* 512 .. 1472, shuffled */
    bench_attention_seqs(16, uneven, 1, 16, 16, 128, reps);
    if (failures) fprintf(stderr, "bench_kernels: %d kernel call(s) failed\n", failures);
    return failures ? 1 : 0;
}
