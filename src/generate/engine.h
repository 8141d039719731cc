/* The generation engine: many requests, each with N samples, decoded together.
 *
 * - Reproducible per sample: token t of sample s of a request is drawn with
 *   srlm_sample_uniform(request seed, s, t), so it does not depend on what else is
 *   in the batch, the batch size, the rank count or a restart.
 * - Continuous batching: up to max_batch sequences decode together; when one
 *   finishes, the next waiting sequence takes its KV slot (at once, or once
 *   min_admit slots are free, so that their prompts share a prefill forward).
 * - Shared prefixes: a request's prompt is prefilled once; its other samples get
 *   a copy of that prompt's KV rows and its last-position logits. A prompt whose
 *   first k >= min_shared_prefix tokens (a judge template, a few-shot preamble)
 *   are the start of the last prompt prefilled, of a running sequence's prompt
 *   or of a prompt admitted with it (prefilled in a forward before) reuses those
 *   k rows, from whichever shares the most. Outputs are the same with sharing on
 *   or off (up to float rounding of GEMM shapes).
 * - Batched prefill: the prompts that start together (the first max_batch,
 *   then whoever takes a freed slot in the same step) run through the model in
 *   as few forwards as fit prefill_tokens (rows x the longest prompt's new rows,
 *   the attention's padded layout); the GEMMs see the real rows only.
 * - Tensor parallel: every rank of m->tp runs the same calls; the last-position
 *   logits are gathered over the vocab shards (B x vocab floats, never the
 *   prompt's) and every rank samples the same tokens.
 *
 * Finish reasons: "eos" (the EOS id is the last of ids), "stop" (a stop string
 * appeared in the decoded text: text is cut exactly before it; ids keep every
 * token generated, up to the one that completed the stop string), "length". */
#ifndef SRLM_ENGINE_H
#define SRLM_ENGINE_H

#include <stdint.h>

#include "generate/sampler.h"
#include "io/tokenizer.h"
#include "model/llama.h"

typedef struct {
    const int          *prompt;      /* ids, BOS included */
    int                 n_prompt;
    int                 n_samples;
    srlm_sampling       sampling;
    int                 max_new_tokens;
    int                 eos_id;      /* -1: none */
    const char *const  *stop;        /* stop strings (decoded with the engine's tokenizer) */
    int                 n_stop;
    uint64_t            seed;
} srlm_gen_request;

typedef struct {
    int         request, sample;
    const int  *ids;                 /* generated ids; valid during the callback only */
    int         n_ids;
    const char *text;                /* decoded (and cut at a stop string); valid during the callback */
    size_t      text_len;
    const char *finish_reason;       /* "eos" | "stop" | "length" */
} srlm_gen_output;

enum { SRLM_GEN_PREFILL_TOKENS = 4096 };

typedef struct {
    int max_batch;                   /* sequences decoded together (KV slots) */
    int max_seq;                     /* KV positions per slot: prompt + new tokens must fit */
    int share_prefix;                /* 1: prefill a prompt once for all its samples */
    int min_shared_prefix;           /* reuse the previous prompt's first k rows when k >= this (0 = off) */
    /* Called before every decode step (NULL: none), on this rank only: the loop's
     * coordinator answers work requests there. A non-OK status stops the engine. */
    srlm_status (*poll)(void *ctx);
    void       *poll_ctx;
    /* Prompts x the longest one's new rows in one prefill forward, at most
     * (0: SRLM_GEN_PREFILL_TOKENS; 1: one prompt a forward). A longer prompt
     * runs alone. The activations are sized for the larger of the two. */
    int         prefill_tokens;
    /* Free slots to wait for before admitting queued samples (0: an eighth of
     * max_batch where the backend replays recorded decode steps, a GPU, where
     * a prefill forward costs several decode steps; else 1). */
    int         min_admit;
} srlm_gen_config;

typedef struct {
    long   prompt_tokens, prefilled_tokens, reused_tokens, generated_tokens, forwards;
    long   prefills;                 /* prefill forwards */
    /* decode_s: the decode steps' forward passes; sample_s: choosing their
     * tokens, with the logits' download where the host samples */
    double prefill_s, decode_s, sample_s;
    /* decode steps recorded and replayed through the backend's recorded
     * steps (backend.h; 0 where it has none) */
    long   steps_recorded, steps_replayed;
    /* padding rows of the decode steps (batches padded to a recorded size) */
    long   decode_padding;
} srlm_gen_stats;

/* Called as each sample finishes, in completion order. A non-OK status stops the engine. */
typedef srlm_status (*srlm_gen_callback)(const srlm_gen_output *out, void *ctx);

/* KV slots of max_seq positions that fit in kv_mb MiB for this model's shard. */
int srlm_gen_slots_for_memory(const srlm_llama *m, int max_seq, double kv_mb);

srlm_status srlm_generate(srlm_llama *m, const srlm_tokenizer *tok, const srlm_gen_config *cfg,
                          const srlm_gen_request *reqs, int n_reqs, srlm_gen_callback cb, void *ctx,
                          srlm_gen_stats *stats);

#endif
