/* The run configuration: one typed struct, filled from a YAML file plus
 * Hydra-style overrides ("train.dpo.beta=0.2") on top of the paper's defaults.
 *
 * Every field is one line in the table of config.c (key, type, default, range,
 * help); adding a field = that line + the struct member here. The table drives
 * the loader, the error messages, `srlm check-config` and its --keys reference. */
#ifndef SRLM_CONFIG_H
#define SRLM_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/dtype.h"
#include "core/status.h"
#include "io/yaml_schema.h"

/* Enum fields hold the index into the table's list of names: keep the orders equal. */
typedef enum { SRLM_BACKEND_CPU, SRLM_BACKEND_CUDA, SRLM_BACKEND_CPU_GUARDED } srlm_backend_kind; /* cpu, cuda, cpu_guarded */
typedef enum { SRLM_SCHEDULE_COSINE, SRLM_SCHEDULE_LINEAR, SRLM_SCHEDULE_CONSTANT } srlm_lr_schedule;
typedef enum { SRLM_DPO_SIGMOID, SRLM_DPO_IPO } srlm_dpo_loss;                     /* sigmoid, ipo */
/* An example longer than max_seq_len: skip it, or cut its prompt from the left
 * (keeping the first token, BOS) until it fits; a response that alone does not fit is skipped. */
typedef enum { SRLM_TRUNC_SKIP, SRLM_TRUNC_PROMPT } srlm_truncation;              /* skip, truncate_prompt */

/* One training phase; SFT and DPO share the type so the trainer takes either.
 * beta, label_smoothing and loss are read for DPO only. */
typedef struct {
    double           lr;               /* peak learning rate */
    double           lr_min;           /* end of the decay */
    srlm_lr_schedule schedule;
    int              warmup_steps;
    int              batch_size;       /* sequences (SFT) or pairs (DPO) per optimizer step, global */
    int              micro_batch_size; /* per rank per forward pass */
    int              micro_batch_tokens; /* tokens per forward pass, a pair's two sequences together; 0 = no cap */
    double           epochs;
    double           weight_decay;
    double           adam_beta1;
    double           adam_beta2;
    double           adam_eps;
    double           grad_clip;        /* global gradient-norm clip; 0 = off */
    double           dropout;
    bool             recompute;        /* activation recomputation in the backward pass */
    int              logits_chunk;     /* token rows of logits held at once; 0 = the micro-batch */
    int              max_seq_len;
    srlm_truncation  truncation;       /* what to do with examples longer than max_seq_len */
    int              checkpoint_every; /* optimizer steps */
    int              keep_last_n;      /* trainer checkpoints kept */
    int              max_bad_steps;    /* bad steps (non-finite, loss spikes) in a row before stopping */
    double           loss_spike_factor; /* loss above this x the recent mean = a spike; 0 = off */
    int              loss_spike_window; /* good steps in that mean (<= SRLM_LOSS_WINDOW_MAX) */
    char            *data;             /* JSONL data of `srlm sft` / `srlm dpo` */
    double           beta;             /* DPO */
    double           label_smoothing;  /* DPO */
    srlm_dpo_loss    loss;             /* DPO */
} srlm_train_config;

/* The most tokens one micro-batch of a phase holds, which its activations are
 * sized for: micro_batch_size examples of seq_len tokens a sequence (a DPO
 * pair has two), or micro_batch_tokens when that is less. */
static inline int64_t srlm_train_micro_tokens(const srlm_train_config *t, int dpo, int64_t seq_len) {
    const int64_t all = (int64_t)t->micro_batch_size * (dpo ? 2 : 1) * seq_len;
    return t->micro_batch_tokens > 0 && t->micro_batch_tokens < all ? t->micro_batch_tokens : all;
}

typedef struct {
    struct {
        char  *name;
        int    seed;
        char  *out_dir;
        double watchdog_s;
    } run;
    struct {
        char      *path;
        char      *tokenizer;
        srlm_dtype dtype;       /* of saved checkpoints: float32, bfloat16, float16 */
    } model;
    struct {
        int tp;
        int dp;
    } parallel;
    struct {
        srlm_backend_kind name;
        int               threads;
        srlm_dtype        dtype;   /* weights, activations, KV cache: float32 or bfloat16 */
    } backend;
    struct {
        double temperature;
        double top_p;
        int    top_k;
        int    max_new_tokens;
        int    samples;
        int    kv_cache_mb;
    } generate;
    struct {
        int    samples;
        char  *template_path;   /* key "judge.template" */
        double temperature;
        double top_p;
        int    max_new_tokens;
    } judge;
    struct {
        int    prompts_per_iteration;
        int    shots_ift;
        int    shots_generated;
        double temperature;
        double top_p;
        int    max_new_tokens;
        double rouge_l_max;
        int    max_copies;
        int    min_words;
        int    max_words;
        char  *prompt_model;
        char  *template_path;   /* key "self_instruct.template" */
        char  *blocklist;
    } self_instruct;
    struct {
        srlm_train_config sft;
        srlm_train_config dpo;
    } train;
    struct {
        int  iterations;
        bool length_control;
        double min_score_gap;
        bool sft_on_top_scores;
        bool build_eft;
        bool   skip_sft;
        double dpo_lr_factor;
        int    prompts_per_item;
    } loop;
    struct {
        char *judge_model;
        char *heldout;
        char *prompts;
    } eval;
    struct {
        char *ift;
        char *eft;
        char *eft_groups;
        char *oasst;
        int   oasst_bad_trees;   /* 0 skip, 1 fail */
    } data;
    /* The cluster `srlm plan` models (no effect on results: not hashed).
     * Bandwidths are nccl-tests bus bandwidths; latencies one collective's. */
    struct {
        double gpu_tflops;            /* bf16 dense peak per GPU */
        double mfu;                   /* assumed model FLOPs utilization */
        double hbm_gbps;              /* GPU memory bandwidth, GB/s */
        double intra_node_busbw_gbs;  /* all-reduce bus bandwidth inside a node, GB/s */
        double inter_node_busbw_gbs;  /* across nodes, per NIC, GB/s */
        int    nics_per_node;
        double intra_node_latency_us;
        double inter_node_latency_us;
    } cluster;
} srlm_config;

/* Defaults, then the file at `path` (NULL: none), then each "key=value" of
 * overrides, then the required-key check and the rules between keys
 * (lr_min <= lr, micro_batch_size <= batch_size, min_words <= max_words). On failure *c holds nothing to free
 * and the message names the file, line and column, or the override. */
srlm_status srlm_config_load(srlm_config *c, const char *path, int n_overrides,
                             char *const *overrides);

/* The same from YAML text in memory; `name` stands for the file in messages. */
srlm_status srlm_config_load_text(srlm_config *c, const char *name, const char *text,
                                  int n_overrides, char *const *overrides);

/* Command-line form "[CONFIG.yaml] [key=value ...]": the first argument is the
 * file when it holds no '='; every other argument is an override. */
srlm_status srlm_config_from_args(srlm_config *c, int n_args, char *const *args);

/* Defaults only, without the required-key check (for code that fills in
 * model.path itself, like the demo). */
srlm_status srlm_config_defaults(srlm_config *c);

/* One more override on a loaded config: "train.dpo.beta=0.2". */
srlm_status srlm_config_set(srlm_config *c, const char *key_eq_value);

void srlm_config_free(srlm_config *c);

/* The resolved config as YAML: nested, every key, defaults included; loading
 * the output gives an equal config. */
srlm_status srlm_config_print(const srlm_config *c, FILE *out);

/* FNV-1a over every key that can change results (not run.name, run.out_dir,
 * run.watchdog_s, backend.threads, parallel.dp): a run refuses a changed one. */
uint64_t srlm_config_hash(const srlm_config *c);

int srlm_config_equal(const srlm_config *a, const srlm_config *b);

/* The table itself, for printing help or a reference. */
const srlm_schema *srlm_config_schema(void);

#endif
