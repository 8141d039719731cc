/* srlm plan: does a config fit a cluster, and how long will it take?
 *
 * Pure arithmetic over the model's shapes, the config (its cluster section
 * included) and a few stated assumptions: no MPI, no GPU, no file. Memory is
 * DESIGN.md's CUDA layout, per parameter a rank holds: 2 B bf16 weight + 4 B
 * fp32 gradient + 12/dp B fp32 master, m and v (ZeRO-1). Activations follow
 * the Megatron estimate (Korthikanti et al., 2022) for a TP-sharded layer,
 * adapted to SwiGLU, GQA and flash attention (nothing seq x seq is kept).
 * Times are FLOPs / (peak x MFU), decoding is bound by HBM bandwidth, and
 * collectives follow an alpha-beta model on nccl-tests bus bandwidths.
 *
 * Every number the report prints is a field below, so the table, the JSON and
 * the tests cannot disagree. */
#ifndef SRLM_PLAN_H
#define SRLM_PLAN_H

#include <stdint.h>

#include "core/status.h"
#include "io/config.h"
#include "io/hf_config.h"

/* The shapes that size a Llama model. */
typedef struct {
    int dim, n_layers, n_heads, n_kv_heads, head_dim, ffn, vocab;
    int tied; /* lm_head shares the embedding (never in Llama-2) */
} srlm_plan_arch;

/* Llama-2 "7b", "13b" or "70b"; anything else is SRLM_BAD_INPUT. */
srlm_status srlm_plan_arch_builtin(const char *name, srlm_plan_arch *out);
void        srlm_plan_arch_from_hf(const srlm_hf_config *hf, srlm_plan_arch *out);
/* Every parameter, norms included, as transformers' num_parameters() counts. */
int64_t     srlm_plan_param_count(const srlm_plan_arch *a);

/* The cluster's size and what the config cannot know: stated assumptions. */
typedef struct {
    int    nodes, gpus_per_node; /* one rank per GPU */
    double gpu_mem_gib;
    int    prompt_tokens;   /* mean user prompt */
    int    template_tokens; /* judge rubric / self-instruct instructions around the prompts */
    double pair_rate;       /* DPO pairs per prompt (equal scores give none) */
    int    gen_batch;       /* > 0: KV cache for this many sequences instead of generate.kv_cache_mb */
} srlm_plan_opts;

void srlm_plan_opts_defaults(srlm_plan_opts *o); /* 1 x 8 x 80 GiB, 128, 512, 0.8, 0 */

/* One training phase (train.sft or train.dpo) at one sequence length. */
typedef struct {
    int     examples_per_micro; /* micro_batch_size, or fewer under micro_batch_tokens */
    int     seqs_per_micro;   /* examples_per_micro, x2 for DPO (chosen + rejected) */
    int64_t act_tokens;       /* token rows the activations are sized for */
    int     seq_len;
    int     recompute;        /* as configured */
    int64_t act_layer_token;  /* bytes per token per layer, everything kept */
    int64_t act_outside_token;/* bytes per token outside the layers */
    int64_t act_logits;       /* fp32 vocab-parallel logits of the micro-batch */
    int64_t act_full;         /* per micro-batch without recomputation */
    int64_t act_recompute;    /* with recomputation */
    int64_t act;              /* the configured one of the two */
    int     micro_steps;      /* micro-batches per rank per optimizer step */
    double  micro_fill;       /* their mean share of a full micro-batch (the last may hold fewer examples) */
    double  flops_micro;      /* per rank per micro-batch */
    int     tp_allreduces;    /* per micro-batch */
    int64_t tp_bytes;         /* of each */
    double  t_compute, t_tp, t_dp, t_optimizer, t_step; /* seconds per optimizer step */
    double  tokens_per_s;     /* whole cluster */
} srlm_plan_train;

/* One generation phase of an iteration; work items are pulled by dp groups. */
typedef struct {
    int64_t sequences;     /* in the iteration */
    int     prompt_len, new_tokens;
    int     prefix_share;  /* sequences that share one prompt's KV */
    int     item_seqs;     /* sequences per work item */
    int     batch;         /* decoded together: min(item, what the KV cache holds) */
    int64_t items, items_per_group;
    double  t_decode_step, t_prefill, t_item, t_total;
} srlm_plan_gen;

typedef struct {
    const srlm_config *cfg;   /* borrowed from the caller */
    srlm_plan_arch     arch;
    srlm_plan_opts     opts;

    int world, tp, dp, groups_per_node, dp_spans_nodes;
    int vocab_padded, heads_local, kv_local, ffn_local;

    int64_t params;         /* the whole model */
    int64_t params_held;    /* by one rank: its TP shard plus replicated norms and KV copies */
    int64_t params_matmul;  /* the whole model minus embedding lookup and norms (FLOPs) */
    int64_t params_shard;   /* ceil(held / dp): this rank's ZeRO-1 share */

    /* memory per rank, bytes */
    int     weight_bytes;      /* per weight in backend.dtype: 2 (bfloat16) or 4 (float32) */
    int     optimizer_bytes;   /* per shard element: m, v, and the fp32 master of a bf16 model */
    int64_t mem_weights, mem_grads, mem_optimizer, mem_reserve;
    int64_t mem_unsharded16;   /* reference: 16 B x params, one device, no sharding */
    int64_t kv_per_token;      /* K and V of every layer, this rank's heads, bf16 */
    int64_t mem_kv, kv_tokens;
    int64_t mem_decode_logits; /* fp32 logits of a decode batch, gathered for sampling */
    int64_t gen_act_tokens, gen_logit_rows, mem_gen_acts; /* the generation forward's rows and activations */
    srlm_plan_train sft, dpo;  /* at max_seq_len */
    int64_t mem_train, mem_gen, mem_peak, mem_budget;
    int     fits;

    /* collectives */
    double tp_busbw_gbs, tp_latency_us, dp_busbw_gbs, dp_latency_us;

    /* one self-rewarding iteration */
    srlm_plan_gen   self_instruct, candidates, judge;
    int64_t         pairs;
    int             pair_len;       /* tokens of one side of a pair, capped by train.dpo.max_seq_len */
    int             ref_pairs_per_fwd; /* pairs in one forward of the loop's reference pass */
    double          t_ref_logp;
    srlm_plan_train dpo_iter;       /* train.dpo at pair_len */
    int64_t         dpo_steps;
    double          t_dpo, t_iteration;
} srlm_plan;

/* Fill *p. SRLM_BAD_INPUT names the problem: a layout the model or the
 * topology refuses (tp dividing the heads, a tp group on one node, parallel.dp
 * against the world size) or a nonsensical option. Not fitting is not an error
 * here: see p->fits and srlm_plan_check_fit. */
srlm_status srlm_plan_compute(const srlm_config *cfg, const srlm_plan_arch *arch,
                              const srlm_plan_opts *opts, srlm_plan *p);

/* Changes that make a plan fit, each checked by planning it again; 0 = none.
 * A KV cache fix, when generation does not fit, comes first and the others
 * are checked with it applied. */
typedef struct {
    int tp;             /* smallest valid tp that fits with the same nodes */
    int nodes;          /* fewest nodes that fit with the same tp (dp derived) */
    int recompute;      /* 1: recomputation on in both phases fits */
    int bf16;           /* 1: backend.dtype bfloat16 fits (the plan was float32) */
    int micro_batch;    /* most examples a micro-batch (both phases, through micro_batch_tokens
                         * where set, else micro_batch_size) that fits */
    int kv_cache_mb;    /* largest generate.kv_cache_mb that fits (generation) */
    int gen_batch;      /* the same for --gen-batch, when that sizes the KV cache */
    /* when no single change fits: recomputation on with the largest micro-batch
     * cap, tp and fewest nodes that fit together (combo_nodes 0: none) */
    int combo_micro_batch, combo_tp, combo_nodes;
} srlm_plan_fixes;

void srlm_plan_find_fixes(const srlm_plan *p, srlm_plan_fixes *f);

/* SRLM_OK when the plan fits; otherwise SRLM_BAD_INPUT saying which term is
 * too large and what would fit. */
srlm_status srlm_plan_check_fit(const srlm_plan *p);

#endif
