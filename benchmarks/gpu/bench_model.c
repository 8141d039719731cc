/* Whole-model benchmarks through the backend ops table (the code srlm sft and
 * srlm generate run), on any backend:
 *   - a training step (forward, backward, the gradient norm and AdamW tensor
 *     by tensor, as the trainer runs them with one replica) of K
 *     micro-batches of B sequences of T tokens (the gradients add up over
 *     the micro-batches, AdamW runs once, as srlm sft does with batch_size =
 *     K x micro_batch_size): tokens/s and model-FLOPs utilisation against a
 *     peak given on the command line, for each K of --micro-batches; then
 *     one micro-batch a step with the device waited for after each phase
 *     (train_phases: forward and backward TFLOP/s, optimizer milliseconds),
 *     and each op's device time in two more such steps (op_profile.h);
 *   - decoding at batch 1 with the KV cache: tokens/s against the bound of
 *     reading every weight once per token at a given memory bandwidth, the
 *     host's time per token split into issuing the forward and waiting for the
 *     token, with the backend's recorded steps (CUDA graphs) as srlm generate
 *     runs it and op by op (decode_op_by_op: the ratio, and whether the tokens
 *     agree), each op's device time op by op (op_profile), and each of the
 *     step's products alone (decode_gemm: time per call,
 *     the host's share of it, weight bytes per second);
 *   - prefilling --prefill P prompts of uneven lengths (64 .. 448 tokens) as
 *     srlm generate starts a batch: one prompt a forward (srlm_llama_forward,
 *     as before batched prefill) and packed together in forwards of up to
 *     SRLM_GEN_PREFILL_TOKENS padded rows (srlm_llama_prefill, as the engine
 *     does now): tokens/s of each, the ratio, and how far apart the two put
 *     each prompt's last-row logits;
 *   - sampled decoding of --decode-batch S sequences (temperature 0.8, top-p
 *     0.9, as the loop's generation): the next tokens drawn on the host from
 *     the downloaded logits, as srlm did before the ops table's sample op, and
 *     then where the logits are (the backend's sample op, as srlm generate does
 *     now; skipped on a backend without one), the same steps in the same run.
 *
 *   bench_model [--backend cuda|cpu] [--dtype float32|bfloat16] [--config 1b|wide-vocab|tiny] [--batch B]
 *               [--seq T] [--micro-batches K[,K...]] [--steps N] [--decode N] [--decode-batch S] [--prefill P]
 *               [--logits-chunk R] [--peak-tflops P] [--mem-gbs G] [--dir DIR]
 *
 * --dtype is backend.dtype: bfloat16 keeps weights and activations in bf16 with
 * fp32 master weights, as srlm sft does (AdamW on the master writing the bf16
 * weights as it goes, inside the timed step). --logits-chunk is
 * train.X.logits_chunk (0: the whole batch). With one micro-batch the optimizer
 * (which reads and writes ~30 bytes per weight in bf16) is a fixed share of
 * every step; at the batch sizes models are trained with it is spread over
 * several micro-batches, which --micro-batches 1,4 shows. wide-vocab is a small model with
 * Llama-2's 32000-token vocab, where the logits are most of the activations.
 *
 * The model is random (srlm_llama_write_random into DIR, default
 * /tmp/srlm-bench-model-CONFIG, reused when present). FLOPs per trained token:
 * 6 * (non-embedding parameters) + 6 * L * T * D (causal attention: half of
 * the 12 * L * T * D of full attention), as in the PaLM paper's MFU. One line
 * per measurement, "key: value" pairs, for run.sh to table. */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "backend/factory.h"
#include "core/rng.h"
#include "generate/engine.h"
#include "generate/sampler.h"
#include "io/checkpoint.h"
#include "io/fsutil.h"
#include "io/hf_config.h"
#include "model/llama.h"
#include "model/llama_init.h"
#include "model/llama_train.h"
#include "train/optimizer.h"
#include "../bench_util.h"
#include "op_profile.h"

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

#define TRY(call)                                                          \
    do {                                                                   \
        if ((call) != SRLM_OK) {                                           \
            fprintf(stderr, "bench_model: %s\n", srlm_last_error());      \
            exit(1);                                                       \
        }                                                                  \
    } while (0)

typedef struct {
    const char *backend, *dtype, *config, *dir;
    int         batch, seq, steps, decode, decode_batch, logits_chunk, prefill;
    double      peak_tflops, mem_gbs;
    double      fill;      /* --fill: also time a batch whose real tokens are this share of batch x seq */
    int         micro[8], n_micro; /* --micro-batches: the step's micro-batch counts to time */
} args;

/* "1,4" -> {1, 4}; exits 2 on anything else */
static void parse_micro(const char *v, args *a) {
    a->n_micro = 0;
    for (const char *c = v; *c;) {
        char *end;
        long k = strtol(c, &end, 10);
        if (end == c || k < 1 || k > 64 || a->n_micro == 8 || (*end && *end != ',')) {
            fprintf(stderr, "bench_model: --micro-batches %s: expected up to 8 counts 1..64 separated by commas\n", v);
            exit(2);
        }
        a->micro[a->n_micro++] = (int)k;
        c = *end ? end + 1 : end;
    }
    if (a->n_micro == 0) {
        fprintf(stderr, "bench_model: --micro-batches: expected a count\n");
        exit(2);
    }
}

static void config_of(const char *name, srlm_hf_config *hc) {
    srlm_hf_config_defaults(hc);
    if (strcmp(name, "1b") == 0) { /* TinyLlama-1.1B's shape: 1.1B parameters */
        hc->vocab_size = 32000, hc->hidden_size = 2048, hc->intermediate_size = 5632;
        hc->num_hidden_layers = 22, hc->num_attention_heads = 32, hc->num_key_value_heads = 4;
    } else if (strcmp(name, "wide-vocab") == 0) { /* 18M parameters, 16M of them the embeddings */
        hc->vocab_size = 32000, hc->hidden_size = 256, hc->intermediate_size = 688;
        hc->num_hidden_layers = 4, hc->num_attention_heads = 8, hc->num_key_value_heads = 4;
    } else if (strcmp(name, "tiny") == 0) { /* runs anywhere in seconds: checks the program */
        hc->vocab_size = 512, hc->hidden_size = 128, hc->intermediate_size = 344;
        hc->num_hidden_layers = 2, hc->num_attention_heads = 4, hc->num_key_value_heads = 2;
    } else {
        fprintf(stderr, "bench_model: --config %s: expected 1b, wide-vocab or tiny\n", name);
        exit(2);
    }
    hc->head_dim = hc->hidden_size / hc->num_attention_heads;
    hc->max_position_embeddings = 4096;
    hc->rms_norm_eps = 1e-5;
    hc->bos_token_id = 1;
    hc->eos_token_id = 2;
    hc->pad_token_id = -1;
    snprintf(hc->torch_dtype, sizeof hc->torch_dtype, "float32");
}

static void parse(int argc, char **argv, args *a) {
    *a = (args){.backend = "cuda", .dtype = "float32", .config = "1b", .batch = 4, .seq = 1024, .steps = 10,
                .decode = 64, .decode_batch = 32, .prefill = 32, .micro = {1}, .n_micro = 1, .fill = 1.0};
    static const char *P = "bench_model";
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1;
        if (!v) { fprintf(stderr, "bench_model: %s needs a value\n", k); exit(2); }
        if (!strcmp(k, "--backend")) a->backend = v;
        else if (!strcmp(k, "--dtype")) a->dtype = v;
        else if (!strcmp(k, "--config")) a->config = v;
        else if (!strcmp(k, "--dir")) a->dir = v;
        else if (!strcmp(k, "--micro-batches")) parse_micro(v, a);
        /* numeric flags: the whole value, within its range (batch x seq fits an int), or exit 2 */
        else if (!strcmp(k, "--batch")) ok = bench_arg_int(P, k, v, 1, 1 << 12, &a->batch);
        else if (!strcmp(k, "--seq")) ok = bench_arg_int(P, k, v, 2, 1 << 18, &a->seq);
        else if (!strcmp(k, "--steps")) ok = bench_arg_int(P, k, v, 1, 1 << 20, &a->steps);
        else if (!strcmp(k, "--decode")) ok = bench_arg_int(P, k, v, 0, 1 << 20, &a->decode);
        else if (!strcmp(k, "--decode-batch")) ok = bench_arg_int(P, k, v, 0, 1 << 16, &a->decode_batch);
        else if (!strcmp(k, "--prefill")) ok = bench_arg_int(P, k, v, 0, 1024, &a->prefill);
        else if (!strcmp(k, "--logits-chunk")) ok = bench_arg_int(P, k, v, 0, 1 << 30, &a->logits_chunk);
        else if (!strcmp(k, "--peak-tflops")) ok = bench_arg_double(P, k, v, 0, 1e6, &a->peak_tflops);
        else if (!strcmp(k, "--mem-gbs")) ok = bench_arg_double(P, k, v, 0, 1e6, &a->mem_gbs);
        else if (!strcmp(k, "--fill")) ok = bench_arg_double(P, k, v, 0.5, 1.0, &a->fill);
        else { fprintf(stderr, "bench_model: unknown flag %s\n", k); exit(2); }
        if (!ok) exit(2);
        i++;
    }
}

/* `steps` decode steps of S sequences (slots 0 .. S-1, prompts of `prompt`
 * tokens already in the cache), the tokens drawn on the host from downloaded
 * logits (host = 1) or by the backend's sample op; returns the seconds, and in
 * *hash a hash of every token drawn (the two ways must draw the same). */
static double sampled_decode(srlm_llama *m, srlm_kv_cache *kv, srlm_llama_acts *fa, int S, int prompt, int steps,
                             int host, srlm_sampler **smp, float *logits, int *next, int *slot, int *past,
                             int *n_new, float *u, uint64_t *hash) {
    srlm_backend *be = m->be;
    const srlm_sampling cfg = {0.8f, 0.9f, 0};
    const int V = m->vocab_padded;
    *hash = 14695981039346656037u;
    for (int b = 0; b < S; b++) next[b] = 3 + b, past[b] = prompt, n_new[b] = 1;
    const double t0 = now_s();
    for (int i = 0; i < steps; i++) {
        const srlm_batch db = {S, 1, next, slot, past, n_new, 1};
        TRY(srlm_llama_forward(m, kv, fa, &db));
        for (int b = 0; b < S; b++) u[b] = srlm_sample_uniform(11, (uint64_t)b, (uint64_t)i);
        srlm_view rows = srlm_view_rows(fa->logits, 0, S);
        if (host) {
            TRY(be->ops->download(be, logits, &rows));
            /* rows in parallel, one sampler each thread, as the engine does on the host */
#pragma omp parallel for schedule(dynamic, 1)
            for (int b = 0; b < S; b++)
                TRY(srlm_sample(smp[omp_get_thread_num()], logits + (size_t)b * V, V, &cfg, u[b], &next[b], NULL));
        } else {
            TRY(be->ops->sample(be, &rows, &cfg, u, next));
        }
        for (int b = 0; b < S; b++) past[b]++, *hash = (*hash ^ (uint64_t)next[b]) * 1099511628211u;
    }
    return now_s() - t0;
}

/* The host's time over a greedy decode: issuing each step's forward, and
 * waiting for its token. The ring of staged parameters lets the host run
 * only ~32 staged ops (about 6 layers) ahead, so a device-bound step run op by
 * op shows a wait of about 6/L of it; a host-bound one, a wait of a few
 * kernels. A replayed step is one launch: its wait is the device's time. */
typedef struct {
    double   issue, wait, total;
    uint64_t hash; /* of the tokens */
} decode_time;

/* `steps` greedy decode steps of sequence 0 (slot 0) from the token `first`
 * after `prompt` cached tokens (rewriting the cache rows past the prompt). */
static void decode_greedy(srlm_llama *m, srlm_kv_cache *kv, srlm_llama_acts *fa, int first, int prompt, int steps,
                          decode_time *t) {
    int slot = 0, past = prompt, n_new = 1, next = first;
    t->hash = 14695981039346656037u;
    const double t0 = now_s();
    for (int i = 0; i < steps; i++) {
        const srlm_batch db = {1, 1, &next, &slot, &past, &n_new, 1};
        const double ta = now_s();
        TRY(srlm_llama_forward(m, kv, fa, &db));
        const double tb = now_s();
        TRY(srlm_llama_argmax(m, fa, 1, &next)); /* the host needs the token: waits for the device */
        t->issue += tb - ta, t->wait += now_s() - tb;
        t->hash = (t->hash ^ (uint64_t)next) * 1099511628211u;
        past++;
    }
    t->total = now_s() - t0;
}

/* AdamW's moments and the model's tensors in the flat layout, with room for
 * one view and one partial sum of squares per tensor. */
typedef struct {
    srlm_view           mom, vel;
    srlm_param_segment *segs;
    int                 n_segs;
    srlm_view          *views;
    double             *parts;
} opt_state;

/* Forward and backward of `micro` micro-batches, then the optimizer as the
 * trainer runs it with one replica (zero1.c): the gradient norm over every
 * tensor in one call (one wait), then AdamW tensor by tensor (no decay on the
 * norms), a bf16 model's working weights written as it goes; returns the
 * step's seconds. */
/* Waits for the device: one gradient element downloaded. */
static void sync_device(srlm_backend *be, const srlm_llama_grads *g) {
    srlm_view one = srlm_view_carve(g->flat, 0, 1, 1);
    float probe;
    TRY(be->ops->download(be, &probe, &one));
}

/* With `phases` (seconds added to [0] forward, [1] backward, [2] optimizer),
 * the device is waited for after each phase, which the plain step never does. */
static double train_step_phased(srlm_llama *m, srlm_train_acts *acts, srlm_llama_grads *g, opt_state *o,
                                const srlm_train_batch *b, int micro, float *logp, float *dlogp, long step,
                                double *phases) {
    srlm_backend *be = m->be;
    const double t0 = now_s();
    double tp = t0;
    const int rows = b->B * b->T;
    for (int k = 0; k < micro; k++) {
        TRY(srlm_llama_train_forward(m, acts, b, logp)); /* waits: the log-probs come back */
        if (phases) phases[0] += now_s() - tp, tp = now_s();
        for (int r = 0; r < rows; r++) dlogp[r] = -1.0f / (float)(rows * micro); /* mean cross-entropy */
        TRY(srlm_llama_train_backward(m, acts, b, dlogp, g, k > 0)); /* the first writes g, the others add */
        if (phases) sync_device(be, g), phases[1] += now_s() - tp, tp = now_s();
    }
    const srlm_adamw_hparams h = {1e-5, 0.9, 0.95, 1e-8, 0.1};
    srlm_view w32 = srlm_llama_weights32(m);
    for (int i = 0; i < o->n_segs; i++) o->views[i] = srlm_view_carve(g->flat, o->segs[i].off, 1, o->segs[i].n);
    TRY(be->ops->sum_squares(be, o->views, o->n_segs, o->parts));
    for (int i = 0; i < o->n_segs; i++) {
        const int64_t off = o->segs[i].off, n = o->segs[i].n;
        const srlm_adamw_consts c = srlm_adamw_consts_make(&h, step, o->segs[i].decay);
        srlm_view p = srlm_view_carve(w32, off, 1, n), mi = srlm_view_carve(o->mom, off, 1, n);
        srlm_view vi = srlm_view_carve(o->vel, off, 1, n), work = srlm_view_carve(m->params, off, 1, n);
        TRY(be->ops->adamw(be, &p, &o->views[i], &mi, &vi, m->master.data ? &work : NULL, &c));
    }
    if (phases) sync_device(be, g), phases[2] += now_s() - tp;
    return now_s() - t0;
}

static double train_step(srlm_llama *m, srlm_train_acts *acts, srlm_llama_grads *g, opt_state *o,
                         const srlm_train_batch *b, int micro, float *logp, float *dlogp, long step) {
    return train_step_phased(m, acts, g, o, b, micro, logp, dlogp, step, NULL);
}

/* One micro-batch a step, `steps` steps, the device waited for after each
 * phase: forward and backward TFLOP/s by the usual third and two thirds of the
 * step's FLOPs, and the optimizer's milliseconds (norm, AdamW, bf16 weights). */
static void time_phases(srlm_llama *m, srlm_train_acts *acts, srlm_llama_grads *g, opt_state *o,
                        const srlm_train_batch *b, float *logp, float *dlogp, long *step, const args *a,
                        double n_flop_params) {
    double ph[3] = {0, 0, 0}, real = 0, attn = 0;
    for (int s = 0; s < a->steps; s++) train_step_phased(m, acts, g, o, b, 1, logp, dlogp, (*step)++, ph);
    for (int i = 0; i < b->B; i++) real += b->len[i], attn += (double)b->len[i] * b->len[i];
    const double flops = 6.0 * n_flop_params * real + 6.0 * m->n_layers * (double)m->dim * attn;
    const double f = ph[0] / a->steps, bw = ph[1] / a->steps, op = ph[2] / a->steps;
    printf("train_phases: batch %d, seq %d, dtype %s, forward %.1f ms (%.2f TFLOP/s), backward %.1f ms "
           "(%.2f TFLOP/s), optimizer %.1f ms\n", b->B, b->T, a->dtype, 1e3 * f, flops / 3 / f / 1e12, 1e3 * bw,
           2 * flops / 3 / bw / 1e12, 1e3 * op);
}

/* Time `steps` optimizer steps of `micro` micro-batches of b and print one
 * train_step line: tokens and FLOPs count the real tokens only (attention per
 * sequence: 6 x layers x len x width per token). */
static void time_train(srlm_llama *m, srlm_train_acts *acts, srlm_llama_grads *g, opt_state *o,
                       const srlm_train_batch *b, int micro, float *logp, float *dlogp, long *step, const args *a,
                       double n_flop_params) {
    double best = 1e30, sum = 0, real = 0, attn = 0;
    for (int s = 0; s < a->steps; s++) {
        double dt = train_step(m, acts, g, o, b, micro, logp, dlogp, (*step)++);
        sum += dt;
        if (dt < best) best = dt;
    }
    for (int i = 0; i < b->B; i++) {
        real += b->len[i];
        attn += (double)b->len[i] * b->len[i];
    }
    const double mean = sum / a->steps, tokens = micro * real;
    const double flops = 6.0 * n_flop_params * tokens + 6.0 * m->n_layers * (double)m->dim * attn * micro;
    printf("train_step: batch %d, seq %d, ", b->B, b->T);
    if (real < (double)b->B * b->T) printf("fill %.2f (%.0f real tokens, packed), ", real / ((double)b->B * b->T), real);
    printf("micro-batches %d, dtype %s, logits rows %d, mean %.4f s, best %.4f s, %.0f tokens/s, %.2f TFLOP/s", micro,
           a->dtype, acts->logits_rows, mean, best, tokens / mean, flops / mean / 1e12);
    if (a->peak_tflops > 0)
        printf(", MFU %.1f%% of %.0f TFLOP/s", 100.0 * flops / mean / 1e12 / a->peak_tflops, a->peak_tflops);
    printf("\n");
}

/* One of a decode step's products (rows x in) W^T, W (out x in), issued `reps`
 * times back to back, then one element downloaded (the wait for all of them).
 * A GEMM call queues without waiting for the device (no staged parameters), so
 * the issue time is the host's cost per call and the whole time per call is the
 * larger of that and the device's: which of the two binds a decode step. */
static void time_decode_gemm(srlm_backend *be, const char *name, int rows, srlm_view y, srlm_view x,
                             const srlm_view *w, int reps, const args *a) {
    y = srlm_view_rows(y, 0, rows), x = srlm_view_rows(x, 0, rows);
    srlm_view one = srlm_view_rows(y, 0, 1);
    one.cols = 1;
    float probe;
    TRY(be->ops->matmul(be, &y, &x, w, 0)); /* warm-up: cuBLAS's choice for this shape */
    TRY(be->ops->download(be, &probe, &one));
    const double t0 = now_s();
    for (int i = 0; i < reps; i++) TRY(be->ops->matmul(be, &y, &x, w, 0));
    const double t1 = now_s();
    TRY(be->ops->download(be, &probe, &one));
    const double per = (now_s() - t0) / reps, issue = (t1 - t0) / reps;
    const double wbytes = (double)w->rows * (double)w->cols * srlm_dtype_size(w->dtype);
    printf("decode_gemm: %s, rows %d, dtype %s, W %lld x %lld, %.1f us per call (issued in %.1f us), %.0f GB/s of "
           "weights", name, rows, a->dtype, (long long)w->rows, (long long)w->cols, per * 1e6, issue * 1e6,
           wbytes / per / 1e9);
    if (a->mem_gbs > 0) printf(" (%.1f%% of %.0f GB/s)", 100.0 * wbytes / per / 1e9 / a->mem_gbs, a->mem_gbs);
    printf("\n");
}

/* One pass over the P prompts: one a forward (packed 0) or packed in
 * forwards of up to SRLM_GEN_PREFILL_TOKENS padded rows, longest first (the
 * engine's rule); each prompt's last-row logits into logits (P x V).
 * Returns the seconds, the device waited for by the logits' download. */
static double prefill_pass(srlm_llama *m, srlm_kv_cache *kv, srlm_llama_acts *fa, int P, const int *len,
                           const int *order, const int *ids, int n_ids, int packed, float *logits, int *n_fwd) {
    const int V = m->vocab_padded;
    int slot[1024], past[1024], n_new[1024], who[1024];
    double t0 = now_s();
    *n_fwd = 0;
    for (int j = 0; j < P;) {
        int cnt = 1, T = len[order[j]], off = 0;
        if (packed)
            while (j + cnt < P && (cnt + 1) * T <= SRLM_GEN_PREFILL_TOKENS) cnt++;
        int *pids = malloc(sizeof(int) * (size_t)cnt * T);
        if (!pids) { fprintf(stderr, "bench_model: out of memory\n"); exit(1); }
        for (int c = 0; c < cnt; c++) {
            const int p = order[j + c];
            who[c] = p, slot[c] = p, past[c] = 0, n_new[c] = len[p];
            for (int t = 0; t < len[p]; t++) pids[off + t] = ids[(p * 977 + t) % n_ids];
            off += len[p];
        }
        const srlm_batch b = {cnt, T, pids, slot, past, n_new, 1};
        TRY(packed ? srlm_llama_prefill(m, kv, fa, &b) : srlm_llama_forward(m, kv, fa, &b));
        float *host = malloc(sizeof(float) * (size_t)cnt * V);
        if (!host) { fprintf(stderr, "bench_model: out of memory\n"); exit(1); }
        srlm_view rows = srlm_view_rows(fa->logits, 0, cnt);
        TRY(m->be->ops->download(m->be, host, &rows));
        for (int c = 0; c < cnt; c++) memcpy(logits + (size_t)who[c] * V, host + (size_t)c * V, sizeof(float) * (size_t)V);
        free(host);
        free(pids);
        (*n_fwd)++;
        j += cnt;
    }
    return now_s() - t0;
}

static void time_prefill(srlm_llama *m, const int *ids, int n_ids, int P, const char *dtype) {
    int len[1024], order[1024], tokens = 0, lo = 1 << 30, hi = 0;
    for (int p = 0; p < P; p++) {
        len[p] = 64 + (int)(srlm_rng_u64(11, (uint64_t)p) % 385);
        tokens += len[p];
        if (len[p] < lo) lo = len[p];
        if (len[p] > hi) hi = len[p];
        int i = p; /* longest first, as the engine orders them */
        while (i > 0 && len[order[i - 1]] < len[p]) { order[i] = order[i - 1]; i--; }
        order[i] = p;
    }
    srlm_kv_cache kv;
    TRY(srlm_kv_cache_new(&kv, m, P, hi));
    srlm_llama_acts fa;
    const int rows = SRLM_GEN_PREFILL_TOKENS > hi ? SRLM_GEN_PREFILL_TOKENS : hi;
    TRY(srlm_llama_acts_new(&fa, m, rows, P));
    TRY(srlm_llama_acts_reserve_padded(&fa, m, rows));
    const size_t n = (size_t)P * m->vocab_padded;
    float *one = malloc(sizeof(float) * n), *packed = malloc(sizeof(float) * n);
    if (!one || !packed) { fprintf(stderr, "bench_model: out of memory\n"); exit(1); }
    int f1, fp;
    prefill_pass(m, &kv, &fa, P, len, order, ids, n_ids, 0, one, &f1); /* warm-up: each shape's GEMM set-up */
    prefill_pass(m, &kv, &fa, P, len, order, ids, n_ids, 1, packed, &fp);
    double t1 = 1e30, tp = 1e30;
    for (int r = 0; r < 3; r++) { /* best of 3 */
        double t = prefill_pass(m, &kv, &fa, P, len, order, ids, n_ids, 0, one, &f1);
        if (t < t1) t1 = t;
        t = prefill_pass(m, &kv, &fa, P, len, order, ids, n_ids, 1, packed, &fp);
        if (t < tp) tp = t;
    }
    double diff = 0, scale = 0;
    for (int p = 0; p < P; p++)
        for (int c = 0; c < m->cfg.vocab_size; c++) {
            const size_t i = (size_t)p * m->vocab_padded + c;
            if (!(fabs(one[i] - packed[i]) <= diff)) diff = fabs(one[i] - packed[i]); /* NaN sticks */
            if (fabs(one[i]) > scale) scale = fabs(one[i]);
        }
    printf("prefill: %d prompts of %d .. %d tokens (%d in all), dtype %s, one a forward %.0f tokens/s (%d forwards), "
           "packed %.0f tokens/s (%d forwards, %.2fx), last-row logits max diff %.3g of max |logit| %.3g\n", P, lo,
           hi, tokens, dtype, tokens / t1, f1, tokens / tp, fp, t1 / tp, diff, scale);
    free(one);
    free(packed);
    srlm_llama_acts_free(&fa, m->be);
    srlm_kv_cache_free(&kv, m->be);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0); /* every result line reaches the log, also when a time limit kills the run */
    args a;
    parse(argc, argv, &a);
    srlm_backend_kind kind;
    TRY(srlm_backend_kind_parse(a.backend, &kind));
    srlm_hf_config hc;
    config_of(a.config, &hc);
    char dir[512];
    snprintf(dir, sizeof dir, "%s", a.dir ? a.dir : "");
    if (!a.dir) snprintf(dir, sizeof dir, "/tmp/srlm-bench-model-%s", a.config);
    char probe[600];
    snprintf(probe, sizeof probe, "%s/config.json", dir);
    struct stat st;
    if (stat(probe, &st) != 0) {
        double t0 = now_s();
        TRY(srlm_mkdir_p(dir));
        TRY(srlm_llama_write_random(dir, &hc, 1, 0.02));
        fprintf(stderr, "bench_model: wrote a random %s model to %s in %.1f s\n", a.config, dir, now_s() - t0);
    }

    srlm_backend *be;
    TRY(srlm_backend_new(kind, 0, 0, &be));
    TRY(srlm_backend_dtype_parse(a.dtype, &be->dtype));
    srlm_checkpoint ck;
    TRY(srlm_ckpt_open(&ck, dir));
    srlm_llama m;
    TRY(srlm_llama_load_for_training(&m, &ck, be, NULL));
    const int D = m.dim;
    const double n_embed = (double)m.vocab_local * D * (m.tied ? 1 : 2);
    const double n_body = (double)m.n_params_local - n_embed; /* the LM head counts: it is a GEMM */
    const double n_flop_params = n_body + (double)m.vocab_local * D;
    printf("model: %s, %.3fB parameters (%.3fB without the embedding), backend %s, dtype %s\n", a.config,
           m.n_params_local / 1e9, n_flop_params / 1e9, be->ops->name, a.dtype);

    /* ---- training step ---- */
    const int B = a.batch, T = a.seq, N = B * T;
    srlm_train_acts acts;
    TRY(srlm_train_acts_new_chunked(&acts, &m, N, 0, a.logits_chunk > 0 ? a.logits_chunk : N));
    srlm_llama_grads g;
    TRY(srlm_llama_grads_new(&g, &m, m.n_params_local));
    opt_state opt = {0};
    TRY(be->ops->alloc(be, &opt.mom, SRLM_F32, 1, m.n_params_local, "AdamW m"));
    TRY(be->ops->alloc(be, &opt.vel, SRLM_F32, 1, m.n_params_local, "AdamW v"));
    TRY(be->ops->fill(be, &opt.mom, 0.0f));
    TRY(be->ops->fill(be, &opt.vel, 0.0f));
    TRY(srlm_llama_segments(&m, &opt.segs, &opt.n_segs));
    opt.views = calloc((size_t)opt.n_segs, sizeof *opt.views);
    opt.parts = calloc((size_t)opt.n_segs, sizeof *opt.parts);
    if (!opt.views || !opt.parts) { fprintf(stderr, "bench_model: out of memory\n"); return 1; }
    int *ids = malloc(sizeof(int) * (size_t)N), *len = malloc(sizeof(int) * (size_t)B);
    float *logp = malloc(sizeof(float) * (size_t)N), *dlogp = malloc(sizeof(float) * (size_t)N);
    if (!ids || !len || !logp || !dlogp) { fprintf(stderr, "bench_model: out of memory\n"); return 1; }
    for (int i = 0; i < N; i++) ids[i] = 3 + (int)(srlm_rng_u64(7, (uint64_t)i) % (uint64_t)(hc.vocab_size - 3));
    for (int b = 0; b < B; b++) len[b] = T;
    const srlm_train_batch batch = {B, T, ids, len, 0.0f, 0, NULL};
    long step = 1;
    train_step(&m, &acts, &g, &opt, &batch, 1, logp, dlogp, step++); /* warm-up: workspaces, clocks */
    for (int i = 0; i < a.n_micro; i++)
        time_train(&m, &acts, &g, &opt, &batch, a.micro[i], logp, dlogp, &step, &a, n_flop_params);
    time_phases(&m, &acts, &g, &opt, &batch, logp, dlogp, &step, &a, n_flop_params);
    /* where the step's device time goes, op by op (op_profile.h) */
    op_profile_on(be);
    for (int s = 0; s < 2; s++) train_step(&m, &acts, &g, &opt, &batch, 1, logp, dlogp, step++);
    char what[96];
    snprintf(what, sizeof what, "train step of %d x %d tokens (1 micro-batch), dtype %s, per step", batch.B,
             batch.T, a.dtype);
    op_profile_report(be, what, 2);
    if (a.fill < 1.0) {
        /* a right-padded batch as SFT and DPO make, which training packs (one attention call
         * over the packed sequences) */
        int *flen = malloc(sizeof(int) * (size_t)B);
        if (!flen) { fprintf(stderr, "bench_model: out of memory\n"); return 1; }
        bench_fill_lengths(B, T, a.fill, flen);
        const srlm_train_batch fb = {B, T, ids, flen, 0.0f, 0, NULL};
        train_step(&m, &acts, &g, &opt, &fb, 1, logp, dlogp, step++); /* warm-up: other shapes */
        time_train(&m, &acts, &g, &opt, &fb, 1, logp, dlogp, &step, &a, n_flop_params);
        free(flen);
    }

    /* ---- decoding at batch 1 ---- */
    if (a.decode > 0) {
        const int prompt = 16, max_seq = prompt + a.decode + 1;
        srlm_kv_cache kv;
        TRY(srlm_kv_cache_new(&kv, &m, 1, max_seq));
        srlm_llama_acts fa;
        TRY(srlm_llama_acts_new(&fa, &m, prompt, prompt));
        int slot = 0, past = 0, n_new = prompt, first;
        srlm_batch pb = {1, prompt, ids, &slot, &past, &n_new, 1};
        TRY(srlm_llama_forward(&m, &kv, &fa, &pb));
        TRY(srlm_llama_argmax(&m, &fa, 1, &first));
        /* op by op first (the engine's path on a backend without recorded
         * steps, and before this one had them), then as srlm generate runs it:
         * recorded steps, where the backend has them; the same tokens both ways */
        decode_time op = {0}, rec = {0};
        fa.step_off = 1;
        decode_greedy(&m, &kv, &fa, first, prompt, a.decode, &op);
        fa.step_off = 0;
        decode_greedy(&m, &kv, &fa, first, prompt, a.decode, &rec);
        decode_time prof = {0};
        fa.step_off = 1; /* a recorded step cannot be timed op by op */
        const int n_prof = a.decode < 32 ? a.decode : 32; /* ~300 ops a token: 32 tokens fill ~10k event pairs */
        op_profile_on(be);
        decode_greedy(&m, &kv, &fa, first, prompt, n_prof, &prof);
        snprintf(what, sizeof what, "decode at batch 1 op by op, dtype %s, per token", a.dtype);
        op_profile_report(be, what, n_prof);
        fa.step_off = 0;
        const double tps = a.decode / rec.total, tps_op = a.decode / op.total;
        const double weight_bytes = (double)m.n_params_local * srlm_dtype_size(m.params.dtype);
        printf("decode: batch 1, dtype %s, %d tokens after a %d-token prompt, %.1f tokens/s, %.2f GB of weights",
               a.dtype, a.decode, prompt, tps, weight_bytes / 1e9);
        if (a.mem_gbs > 0) {
            const double bound = a.mem_gbs * 1e9 / weight_bytes;
            printf(", bound %.1f tokens/s at %.0f GB/s (%.1f%%)", bound, a.mem_gbs, 100.0 * tps / bound);
        }
        printf(", per token %.3f ms issuing the forward and %.3f ms waiting for the token, %ld of %d steps replayed "
               "as recorded\n", 1e3 * rec.issue / a.decode, 1e3 * rec.wait / a.decode, fa.steps_replayed, a.decode);
        printf("decode_op_by_op: batch 1, dtype %s, %d tokens, %.1f tokens/s, per token %.3f ms issuing the forward and "
               "%.3f ms waiting for the token; recorded steps %.2fx, %s tokens\n", a.dtype, a.decode, tps_op,
               1e3 * op.issue / a.decode, 1e3 * op.wait / a.decode, tps / tps_op,
               op.hash == rec.hash ? "the same" : "DIFFERENT");
        /* the step's products one by one, as the forward makes them (q, k, v
         * stacked into one, gate and up into one), at batch 1 and at `prompt` rows */
        const srlm_llama_layer *ly = &m.layers[0];
        srlm_view w_qkv, w_gu;
        TRY(srlm_llama_qkv_weight(ly, &w_qkv));
        TRY(srlm_llama_gate_up_weight(ly, &w_gu));
        const int reps = 200, rows_of[2] = {1, prompt};
        for (int i = 0; i < 2; i++) {
            const int r = rows_of[i];
            time_decode_gemm(be, "qkv", r, fa.qkv, fa.xn, &w_qkv, reps, &a);
            time_decode_gemm(be, "o", r, fa.proj, fa.att, &ly->wo, reps, &a);
            time_decode_gemm(be, "gate_up", r, fa.gu, fa.xn, &w_gu, reps, &a);
            time_decode_gemm(be, "down", r, fa.proj, fa.gate, &ly->w_down, reps, &a);
            time_decode_gemm(be, "lm_head", r, fa.logits, fa.xn, &m.lm_head, reps / 4, &a);
        }
        srlm_llama_acts_free(&fa, be);
        srlm_kv_cache_free(&kv, be);
    }

    /* ---- prefilling a batch's prompts: one a forward, then packed ---- */
    if (a.prefill > 0) {
        time_prefill(&m, ids, N, a.prefill, a.dtype);
    }

    /* ---- sampled decoding of a batch: host sampling, then the backend's ---- */
    if (a.decode > 0 && a.decode_batch > 0) {
        const int S = a.decode_batch, prompt = 16, max_seq = prompt + a.decode + 1, V = m.vocab_padded;
        srlm_kv_cache kv;
        TRY(srlm_kv_cache_new(&kv, &m, S, max_seq));
        srlm_llama_acts fa;
        TRY(srlm_llama_acts_new(&fa, &m, S * prompt, S));
        int *pids = malloc(sizeof(int) * (size_t)S * prompt), *next = malloc(sizeof(int) * (size_t)S * 4);
        float *logits = malloc(sizeof(float) * (size_t)S * V), *u = malloc(sizeof(float) * (size_t)S);
        const int n_smp = omp_get_max_threads();
        srlm_sampler **smp = calloc((size_t)n_smp, sizeof *smp);
        if (!pids || !next || !logits || !u || !smp) { fprintf(stderr, "bench_model: out of memory\n"); return 1; }
        for (int i = 0; i < n_smp; i++) TRY(srlm_sampler_new(&smp[i], V));
        int *slot = next + S, *past = slot + S, *n_new = past + S;
        for (int i = 0; i < S * prompt; i++) pids[i] = ids[i % N];
        for (int b = 0; b < S; b++) slot[b] = b, past[b] = 0, n_new[b] = prompt;
        const srlm_batch pb = {S, prompt, pids, slot, past, n_new, 1};
        TRY(srlm_llama_forward(&m, &kv, &fa, &pb));
        uint64_t h_host, h_dev;
        sampled_decode(&m, &kv, &fa, S, prompt, 2, 1, smp, logits, next, slot, past, n_new, u, &h_host); /* warm-up */
        const double t_host = sampled_decode(&m, &kv, &fa, S, prompt, a.decode, 1, smp, logits, next, slot, past,
                                             n_new, u, &h_host);
        printf("decode_sampled: batch %d, dtype %s, %d steps, temperature 0.8, top-p 0.9, host sampling %.1f tokens/s",
               S, a.dtype, a.decode, (double)S * a.decode / t_host);
        if (be->ops->sample) {
            const double t_dev = sampled_decode(&m, &kv, &fa, S, prompt, a.decode, 0, smp, logits, next, slot, past,
                                                n_new, u, &h_dev);
            printf(", backend sampling %.1f tokens/s (%.2fx), %s tokens", (double)S * a.decode / t_dev, t_host / t_dev,
                   h_dev == h_host ? "the same" : "DIFFERENT");
            /* the recorded steps' share: the same, op by op */
            uint64_t h_op;
            fa.step_off = 1;
            const double t_op = sampled_decode(&m, &kv, &fa, S, prompt, a.decode, 0, smp, logits, next, slot, past,
                                               n_new, u, &h_op);
            fa.step_off = 0;
            printf("; op by op %.1f tokens/s (recorded steps %.2fx), %s tokens", (double)S * a.decode / t_op,
                   t_op / t_dev, h_op == h_dev ? "the same" : "DIFFERENT");
        }
        printf("\n");
        for (int i = 0; i < n_smp; i++) srlm_sampler_free(smp[i]);
        free(smp), free(pids), free(next), free(logits), free(u);
        srlm_llama_acts_free(&fa, be);
        srlm_kv_cache_free(&kv, be);
    }

    free(ids), free(len), free(logp), free(dlogp);
    be->ops->free(be, &opt.mom);
    be->ops->free(be, &opt.vel);
    free(opt.segs);
    free(opt.views);
    free(opt.parts);
    srlm_llama_grads_free(&g, &m);
    srlm_train_acts_free(&acts, &m);
    srlm_llama_free(&m);
    srlm_ckpt_close(&ck);
    srlm_backend_free(be);
    return 0;
}
