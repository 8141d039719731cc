#include "pipeline/plan.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "generate/engine.h"

#define GIB      1073741824.0
#define MIB      1048576
#define MAX_NODES 100000 /* the search for "more nodes" stops here */

/* ---- the model ---------------------------------------------------------- */

srlm_status srlm_plan_arch_builtin(const char *name, srlm_plan_arch *out) {
    /* Llama-2 config.json values (meta-llama/Llama-2-*-hf) */
    static const struct { const char *name; srlm_plan_arch a; } TABLE[] = {
        {"7b",  {4096, 32, 32, 32, 128, 11008, 32000, 0}},
        {"13b", {5120, 40, 40, 40, 128, 13824, 32000, 0}},
        {"70b", {8192, 80, 64, 8,  128, 28672, 32000, 0}},
    };
    for (size_t i = 0; i < sizeof TABLE / sizeof TABLE[0]; i++)
        if (name && !strcmp(name, TABLE[i].name)) {
            *out = TABLE[i].a;
            return SRLM_OK;
        }
    return SRLM_ERR(SRLM_BAD_INPUT, "unknown architecture '%s': expected 7b, 13b or 70b (Llama-2)",
                    name ? name : "");
}

void srlm_plan_arch_from_hf(const srlm_hf_config *hf, srlm_plan_arch *out) {
    out->dim = hf->hidden_size;
    out->n_layers = hf->num_hidden_layers;
    out->n_heads = hf->num_attention_heads;
    out->n_kv_heads = hf->num_key_value_heads;
    out->head_dim = hf->head_dim;
    out->ffn = hf->intermediate_size;
    out->vocab = hf->vocab_size;
    out->tied = hf->tie_word_embeddings;
}

/* One decoder layer: q [H*hd, D], k and v [KV*hd, D], o [D, H*hd], gate and up
 * [F, D], down [D, F], two RMSNorm weights [D]. */
static int64_t layer_params(const srlm_plan_arch *a, int64_t heads, int64_t kv, int64_t ffn) {
    const int64_t D = a->dim, hd = a->head_dim;
    return 2 * D * heads * hd + 2 * D * kv * hd + 3 * D * ffn + 2 * D;
}

int64_t srlm_plan_param_count(const srlm_plan_arch *a) {
    const int64_t VD = (int64_t)a->vocab * a->dim;
    return VD * (a->tied ? 1 : 2) + (int64_t)a->n_layers * layer_params(a, a->n_heads, a->n_kv_heads, a->ffn) +
           a->dim; /* final norm */
}

/* DESIGN.md "Tensors": tp divides the heads and either divides or is a
 * multiple of the KV heads; the MLP is split by hidden units. */
static int tp_valid(const srlm_plan_arch *a, int tp) {
    return tp >= 1 && a->n_heads % tp == 0 && (a->n_kv_heads % tp == 0 || tp % a->n_kv_heads == 0) &&
           a->ffn % tp == 0;
}

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

void srlm_plan_opts_defaults(srlm_plan_opts *o) {
    memset(o, 0, sizeof *o);
    o->nodes = 1;
    o->gpus_per_node = 8;
    o->gpu_mem_gib = 80;
    o->prompt_tokens = 128;   /* OASST first-turn prompts are mostly shorter */
    o->template_tokens = 512; /* configs/prompts/judge.txt without its comments */
    o->pair_rate = 0.8;
    o->gen_batch = 0;
}

/* ---- collectives: alpha-beta on nccl-tests bus bandwidth ------------------ */

/* busbw = algbw x 2(n-1)/n for all-reduce and x (n-1)/n for reduce-scatter and
 * all-gather (nccl-tests' definition), so time = latency + factor x S / busbw. */
static double t_allreduce(double bytes, int n, double busbw_gbs, double lat_us) {
    if (n <= 1) return 0;
    return lat_us * 1e-6 + 2.0 * (n - 1) / n * bytes / (busbw_gbs * 1e9);
}

static double t_gather(double bytes, int n, double busbw_gbs, double lat_us) {
    if (n <= 1) return 0;
    return lat_us * 1e-6 + (double)(n - 1) / n * bytes / (busbw_gbs * 1e9);
}

static double flop_rate(const srlm_plan *p) { return p->cfg->cluster.gpu_tflops * 1e12 * p->cfg->cluster.mfu; }

/* Forward FLOPs of causal attention for one sequence of s tokens on this
 * rank's heads: QK^T and PV, 2 s^2 hd each per head, halved by the mask. */
static double attn_fwd_flops(const srlm_plan *p, double s) {
    return 2.0 * p->arch.n_layers * s * s * p->heads_local * p->arch.head_dim;
}

/* ---- training ----------------------------------------------------------- */

/* Examples per micro-batch when every one is seq_len tokens a sequence:
 * micro_batch_size, or fewer where micro_batch_tokens caps the tokens (a DPO
 * pair counts its two sequences); at least one, as in the trainer. */
static int examples_per_micro(const srlm_train_config *tc, int is_dpo, int seq_len) {
    const int64_t per_example = (int64_t)(is_dpo ? 2 : 1) * seq_len;
    int64_t n = tc->micro_batch_size;
    if (tc->micro_batch_tokens > 0 && per_example > 0 && tc->micro_batch_tokens / per_example < n)
        n = tc->micro_batch_tokens / per_example;
    return n < 1 ? 1 : (int)n;
}

static void plan_train(const srlm_plan *p, const srlm_train_config *tc, int is_dpo, int seq_len,
                       srlm_plan_train *t) {
    const srlm_plan_arch *a = &p->arch;
    const int64_t D = a->dim, L = a->n_layers, hd = a->head_dim;
    memset(t, 0, sizeof *t);
    t->examples_per_micro = examples_per_micro(tc, is_dpo, seq_len);
    t->seqs_per_micro = t->examples_per_micro * (is_dpo ? 2 : 1);
    t->seq_len = seq_len;
    t->recompute = tc->recompute;
    const int64_t tokens = (int64_t)t->seqs_per_micro * seq_len;
    /* the trainer's activations: sized for its longest sequences (here seq_len) */
    const int64_t act_tokens = srlm_train_micro_tokens(tc, is_dpo, seq_len);
    t->act_tokens = act_tokens;

    /* Bytes per token per layer (bf16 unless noted). Replicated over tp: both
     * norm inputs (the residual stream) and outputs (the inputs of q/k/v and
     * gate/up), 8D, plus two uint8 dropout masks, 2D. Sharded: Q, K, V and the
     * attention output (flash attention keeps no seq x seq matrix, only the
     * fp32 log-sum-exp per head), and gate, up and their SwiGLU product. */
    t->act_layer_token = 8 * D + (tc->dropout > 0 ? 2 * D : 0) + 2 * p->heads_local * hd +
                         4 * (int64_t)p->kv_local * hd + 2 * p->heads_local * hd + 6 * (int64_t)p->ffn_local +
                         4 * (int64_t)p->heads_local;
    /* final norm input and output (4D) and the fp32 gradient of the residual stream (4D) */
    t->act_outside_token = 8 * D;
    /* vocab-parallel logits, fp32; their gradient is written in place; with
     * train.X.logits_chunk, only that many rows at a time */
    const int64_t logit_rows = tc->logits_chunk > 0 && tc->logits_chunk < act_tokens ? tc->logits_chunk : act_tokens;
    t->act_logits = logit_rows * p->vocab_padded / p->tp * 4;
    t->act_full = act_tokens * (L * t->act_layer_token + t->act_outside_token) + t->act_logits;
    /* recomputation keeps each layer's input (2D) and rebuilds one layer at a time */
    t->act_recompute = act_tokens * (L * 2 * D + t->act_layer_token + t->act_outside_token) + t->act_logits;
    t->act = t->recompute ? t->act_recompute : t->act_full;

    const int64_t per_replica = ceil_div(tc->batch_size, p->dp);
    t->micro_steps = (int)ceil_div(per_replica, t->examples_per_micro);
    /* 2 FLOPs per weight per token forward, 4 backward, 2 more to recompute */
    t->flops_micro = (6.0 + 2.0 * t->recompute) * (double)p->params_matmul * (double)tokens / p->tp +
                     (3.0 + t->recompute) * t->seqs_per_micro * attn_fwd_flops(p, seq_len) +
                     /* chunked logits: the LM head again for every chunk but the last */
                     2.0 * (double)(tokens > logit_rows ? tokens - logit_rows : 0) * a->vocab * D / p->tp;
    /* the last micro-batch may hold fewer examples; packed, it costs only theirs */
    t->micro_fill = (double)per_replica / ((double)t->micro_steps * t->examples_per_micro);
    t->t_compute = t->micro_steps * t->micro_fill * t->flops_micro / flop_rate(p);
    /* per layer: o and down allreduce their outputs forward, the inputs' gradients
     * of q/k/v and gate/up backward; recomputation reruns the forward ones */
    t->tp_allreduces = p->tp > 1 ? (int)L * (4 + 2 * t->recompute) : 0;
    t->tp_bytes = tokens * D * 2;
    t->t_tp = t->micro_steps * t->tp_allreduces *
              t_allreduce((double)t->tp_bytes * t->micro_fill, p->tp, p->tp_busbw_gbs, p->tp_latency_us);
    /* ZeRO-1: reduce-scatter fp32 gradients, all-gather the updated weights
     * (a bf16 model: each rank's master shard rounded to bf16) */
    const double held = (double)p->params_shard * p->dp;
    t->t_dp = t_gather(4 * held, p->dp, p->dp_busbw_gbs, p->dp_latency_us) +
              t_gather(p->weight_bytes * held, p->dp, p->dp_busbw_gbs, p->dp_latency_us);
    /* AdamW on the shard: read grad (4) + master or weight, m, v (12), write them
     * (12); bf16: AdamW also writes each updated value rounded (2: the weight
     * itself at dp 1, the all-gather's slot at dp > 1), and with dp > 1 the
     * gathered bf16 weights are copied into place (2 + 2 per held weight) */
    t->t_optimizer = (28.0 + (p->weight_bytes == 2 ? 2.0 + (p->dp > 1 ? 4.0 * p->dp : 0.0) : 0.0)) * (double)p->params_shard /
                     (p->cfg->cluster.hbm_gbps * 1e9);
    t->t_step = t->t_compute + t->t_tp + t->t_dp + t->t_optimizer; /* no overlap assumed */
    t->tokens_per_s = (double)tc->batch_size * (is_dpo ? 2 : 1) * seq_len / t->t_step;
}

/* ---- generation --------------------------------------------------------- */

static void plan_gen(const srlm_plan *p, int64_t seqs, int prompt, int new_tokens, int share, int item,
                     srlm_plan_gen *g) {
    const srlm_plan_arch *a = &p->arch;
    memset(g, 0, sizeof *g);
    g->sequences = seqs;
    g->prompt_len = prompt;
    g->new_tokens = new_tokens;
    g->prefix_share = share;
    g->item_seqs = item;
    int64_t fit = p->kv_tokens / (prompt + new_tokens); /* whole sequences, prefixes not shared */
    g->batch = (int)(fit < item ? fit : item);
    g->items = ceil_div(seqs, item);
    g->items_per_group = ceil_div(g->items, p->dp);
    if (g->batch < 1) return; /* the KV cache cannot hold one sequence: does not fit */

    const double B = g->batch, ctx = prompt + new_tokens / 2.0;
    const double bw = p->cfg->cluster.hbm_gbps * 1e9;
    /* one decode step: read every weight and the batch's KV once (memory-bound),
     * unless the batch's FLOPs take longer; two TP allreduces per layer */
    double t_mem = ((double)p->mem_weights + B * ctx * (double)p->kv_per_token) / bw;
    double flops = B * (2.0 * (double)p->params_matmul / p->tp +
                        4.0 * a->n_layers * ctx * p->heads_local * a->head_dim);
    double t_cmp = flops / flop_rate(p);
    g->t_decode_step = (t_mem > t_cmp ? t_mem : t_cmp) +
                       2.0 * a->n_layers * t_allreduce(B * a->dim * 2, p->tp, p->tp_busbw_gbs, p->tp_latency_us);
    /* prefill: each distinct prompt once (shared-prefix KV), compute-bound */
    double prompts = ceil(B / share), tokens = prompts * prompt;
    double pf = (2.0 * (double)p->params_matmul / p->tp * tokens + prompts * attn_fwd_flops(p, prompt)) /
                flop_rate(p);
    double pf_mem = (double)p->mem_weights / bw;
    g->t_prefill = (pf > pf_mem ? pf : pf_mem) +
                   2.0 * a->n_layers * t_allreduce(tokens * a->dim * 2, p->tp, p->tp_busbw_gbs, p->tp_latency_us);
    /* every sequence assumed to run to max_new_tokens */
    g->t_item = (double)ceil_div(item, g->batch) * (g->t_prefill + new_tokens * g->t_decode_step);
    g->t_total = (double)g->items_per_group * g->t_item;
}

/* ---- the plan ----------------------------------------------------------- */

static srlm_status check_inputs(const srlm_config *c, const srlm_plan_arch *a, const srlm_plan_opts *o) {
    if (a->dim < 1 || a->n_layers < 1 || a->n_heads < 1 || a->n_kv_heads < 1 || a->head_dim < 1 || a->ffn < 1 ||
        a->vocab < 1)
        return SRLM_ERR(SRLM_BAD_INPUT, "model shapes must be positive (dim %d, layers %d, heads %d, kv heads %d, "
                        "head_dim %d, ffn %d, vocab %d)", a->dim, a->n_layers, a->n_heads, a->n_kv_heads,
                        a->head_dim, a->ffn, a->vocab);
    if (a->n_heads % a->n_kv_heads)
        return SRLM_ERR(SRLM_BAD_INPUT, "%d attention heads are not divisible by %d KV heads", a->n_heads,
                        a->n_kv_heads);
    if (o->nodes < 1 || o->gpus_per_node < 1)
        return SRLM_ERR(SRLM_BAD_INPUT, "--nodes %d x --gpus-per-node %d: both must be at least 1", o->nodes,
                        o->gpus_per_node);
    /* the upper bounds keep byte counts inside int64 */
    if (!(o->gpu_mem_gib > 0 && o->gpu_mem_gib <= 1 << 20))
        return SRLM_ERR(SRLM_BAD_INPUT, "--gpu-mem %g: expected GiB between 0 and 1048576", o->gpu_mem_gib);
    if (o->prompt_tokens < 1 || o->prompt_tokens > 1 << 24 || o->template_tokens < 0 ||
        o->template_tokens > 1 << 24 || o->gen_batch < 0 || o->gen_batch > 1 << 24)
        return SRLM_ERR(SRLM_BAD_INPUT, "--prompt-tokens %d, --template-tokens %d, --gen-batch %d: expected 1, 0 "
                        "and 0 up to 16777216", o->prompt_tokens, o->template_tokens, o->gen_batch);
    if (!(o->pair_rate >= 0 && o->pair_rate <= 1))
        return SRLM_ERR(SRLM_BAD_INPUT, "--pair-rate %g: expected pairs per prompt between 0 and 1", o->pair_rate);
    const int tp = c->parallel.tp, G = o->gpus_per_node;
    if (a->n_heads % tp)
        return SRLM_ERR(SRLM_BAD_INPUT, "parallel.tp = %d does not divide the %d attention heads", tp, a->n_heads);
    if (a->n_kv_heads % tp && tp % a->n_kv_heads)
        return SRLM_ERR(SRLM_BAD_INPUT, "parallel.tp = %d and the %d KV heads: one must divide the other", tp,
                        a->n_kv_heads);
    if (a->ffn % tp)
        return SRLM_ERR(SRLM_BAD_INPUT, "parallel.tp = %d does not divide intermediate_size %d", tp, a->ffn);
    if (tp > G || G % tp)
        return SRLM_ERR(SRLM_BAD_INPUT, "parallel.tp = %d with %d GPUs per node: a tp group must sit on one node "
                        "(tp must divide the GPUs per node)", tp, G);
    long long world = (long long)o->nodes * G;
    if (c->parallel.dp > 0 && (long long)tp * c->parallel.dp != world)
        return SRLM_ERR(SRLM_BAD_INPUT, "parallel.tp = %d x parallel.dp = %d = %lld ranks, but %d node(s) x %d GPUs "
                        "= %lld (set parallel.dp = 0 to derive it)", tp, c->parallel.dp,
                        (long long)tp * c->parallel.dp, o->nodes, G, world);
    if (world > 0x7fffffff) return SRLM_ERR(SRLM_BAD_INPUT, "%lld ranks: too many", world);
    return SRLM_OK;
}

srlm_status srlm_plan_compute(const srlm_config *c, const srlm_plan_arch *a, const srlm_plan_opts *o,
                              srlm_plan *p) {
    memset(p, 0, sizeof *p);
    SRLM_CHECK(check_inputs(c, a, o));
    p->cfg = c;
    p->arch = *a;
    p->opts = *o;
    const int64_t D = a->dim, L = a->n_layers, hd = a->head_dim;

    /* layout: tp consecutive ranks on one node, dp replicas */
    p->tp = c->parallel.tp;
    p->world = o->nodes * o->gpus_per_node;
    p->dp = p->world / p->tp;
    p->groups_per_node = o->gpus_per_node / p->tp;
    p->dp_spans_nodes = p->dp > p->groups_per_node;
    p->tp_busbw_gbs = c->cluster.intra_node_busbw_gbs;
    p->tp_latency_us = c->cluster.intra_node_latency_us;
    if (p->dp_spans_nodes) {
        /* the tp ranks of a node run their dp collectives at once, sharing its NICs */
        double nic = c->cluster.inter_node_busbw_gbs * c->cluster.nics_per_node / p->tp;
        p->dp_busbw_gbs = nic < c->cluster.intra_node_busbw_gbs ? nic : c->cluster.intra_node_busbw_gbs;
        p->dp_latency_us = c->cluster.inter_node_latency_us;
    } else {
        p->dp_busbw_gbs = c->cluster.intra_node_busbw_gbs;
        p->dp_latency_us = c->cluster.intra_node_latency_us;
    }

    /* what one rank holds; the vocab is padded to a multiple of 64 x tp */
    const int unit = 64 * p->tp;
    p->vocab_padded = (a->vocab + unit - 1) / unit * unit;
    p->heads_local = a->n_heads / p->tp;
    p->kv_local = a->n_kv_heads >= p->tp ? a->n_kv_heads / p->tp : 1; /* tp > KV heads: a copy */
    p->ffn_local = a->ffn / p->tp;
    p->params = srlm_plan_param_count(a);
    p->params_held = (int64_t)p->vocab_padded / p->tp * D * (a->tied ? 1 : 2) +
                     L * layer_params(a, p->heads_local, p->kv_local, p->ffn_local) + D;
    p->params_matmul = (int64_t)a->vocab * D + L * (layer_params(a, a->n_heads, a->n_kv_heads, a->ffn) - 2 * D);
    p->params_shard = ceil_div(p->params_held, p->dp);

    /* model state, DESIGN.md: 2 + 4 + 12/dp bytes per held parameter with
     * backend.dtype bfloat16 (the fp32 master is sharded with m and v), 4 + 4 + 8/dp
     * with float32 (the weights are their own master) */
    p->weight_bytes = c->backend.dtype == SRLM_BF16 ? 2 : 4;
    p->optimizer_bytes = p->weight_bytes == 2 ? 12 : 8;
    p->mem_weights = p->weight_bytes * p->params_held;
    p->mem_grads = 4 * p->params_held;
    p->mem_optimizer = p->optimizer_bytes * p->params_shard;
    p->mem_unsharded16 = 16 * p->params;
    p->mem_budget = (int64_t)(o->gpu_mem_gib * GIB);
    /* CUDA context, cuBLAS and NCCL workspaces (2 GiB) and allocator fragmentation (5%) */
    p->mem_reserve = (int64_t)(2 * GIB) + p->mem_budget / 20;

    plan_train(p, &c->train.sft, 0, c->train.sft.max_seq_len, &p->sft);
    plan_train(p, &c->train.dpo, 1, c->train.dpo.max_seq_len, &p->dpo);
    int64_t act = p->sft.act > p->dpo.act ? p->sft.act : p->dpo.act;
    p->mem_train = p->mem_weights + p->mem_grads + p->mem_optimizer + act + p->mem_reserve;

    /* generation: the three phases of an iteration and their lengths */
    const int P = o->prompt_tokens, T = o->template_tokens;
    const int si_prompt = T + (c->self_instruct.shots_ift + c->self_instruct.shots_generated) * P;
    const int judge_prompt = T + P + c->generate.max_new_tokens;
    const int64_t n_prompts = c->self_instruct.prompts_per_iteration;
    const int ppi = c->loop.prompts_per_item, N = c->generate.samples, J = c->judge.samples;
    int longest = si_prompt + c->self_instruct.max_new_tokens;
    if (P + c->generate.max_new_tokens > longest) longest = P + c->generate.max_new_tokens;
    if (judge_prompt + c->judge.max_new_tokens > longest) longest = judge_prompt + c->judge.max_new_tokens;

    p->kv_per_token = 2 * L * p->kv_local * hd * 2;
    p->mem_kv = o->gen_batch > 0 ? (int64_t)o->gen_batch * longest * p->kv_per_token
                                 : (int64_t)c->generate.kv_cache_mb * MIB;
    p->kv_tokens = p->mem_kv / p->kv_per_token;
    plan_gen(p, n_prompts, si_prompt, c->self_instruct.max_new_tokens, 1, ppi, &p->self_instruct);
    plan_gen(p, n_prompts * N, P, c->generate.max_new_tokens, N, ppi * N, &p->candidates);
    plan_gen(p, n_prompts * N * J, judge_prompt, c->judge.max_new_tokens, J, ppi * N * J, &p->judge);
    int max_batch = p->self_instruct.batch;
    if (p->candidates.batch > max_batch) max_batch = p->candidates.batch;
    if (p->judge.batch > max_batch) max_batch = p->judge.batch;
    /* the engine gathers full (padded) logits of the batch for sampling */
    p->mem_decode_logits = (int64_t)max_batch * p->vocab_padded * 4;
    /* the generation forward's activations (engine.c): a batched prefill's rows
     * (SRLM_GEN_PREFILL_TOKENS at most, no fewer than the longest prompt) and a
     * batch of logit rows of this rank's vocabulary shard, in the model's dtype */
    const srlm_plan_gen *phases[3] = {&p->self_instruct, &p->candidates, &p->judge};
    p->gen_logit_rows = max_batch;
    p->gen_act_tokens = max_batch;
    for (int i = 0; i < 3; i++) {
        int64_t t = (int64_t)phases[i]->batch * phases[i]->prompt_len;
        if (t > SRLM_GEN_PREFILL_TOKENS) t = SRLM_GEN_PREFILL_TOKENS;
        if (t < phases[i]->prompt_len) t = phases[i]->prompt_len;
        if (t > p->gen_act_tokens) p->gen_act_tokens = t;
    }
    /* a row: x, xn, proj, qkv, att, gate/up; and q, k, v, att again in the
     * attention's padded layout (srlm_llama_prefill) */
    const int64_t row = 3 * D + 4 * (int64_t)p->heads_local * hd + 4 * (int64_t)p->kv_local * hd + 2 * (int64_t)p->ffn_local;
    p->mem_gen_acts = p->weight_bytes * (p->gen_act_tokens * row + (int64_t)max_batch * (p->vocab_padded / p->tp));
    p->mem_gen = p->mem_weights + p->mem_kv + p->mem_decode_logits + p->mem_gen_acts + p->mem_reserve;

    p->mem_peak = p->mem_train > p->mem_gen ? p->mem_train : p->mem_gen;
    p->fits = p->mem_peak <= p->mem_budget && p->self_instruct.batch >= 1 && p->candidates.batch >= 1 &&
              p->judge.batch >= 1;

    /* reference log-probs: one forward of both sides of every pair; work
     * items of up to 32 pairs (loop.prompts_per_item) spread over the dp
     * groups, each in forwards of at most the tokens a train.dpo micro-batch
     * holds (loop_iter.c), a last, partly filled one at its share */
    p->pairs = llround(o->pair_rate * (double)n_prompts);
    p->pair_len = P + c->generate.max_new_tokens;
    if (p->pair_len > c->train.dpo.max_seq_len) p->pair_len = c->train.dpo.max_seq_len;
    const int64_t budget = srlm_train_micro_tokens(&c->train.dpo, 1, c->train.dpo.max_seq_len);
    const int per_item = c->loop.prompts_per_item < 32 ? c->loop.prompts_per_item : 32;
    int64_t mb = budget / (2 * (int64_t)p->pair_len);
    if (mb > per_item) mb = per_item;
    if (mb < 1) mb = 1;
    p->ref_pairs_per_fwd = (int)mb;
    const double fwd_tokens = 2.0 * (double)mb * p->pair_len;
    const double fwd_flops =
        2.0 * (double)p->params_matmul / p->tp * fwd_tokens + 2.0 * (double)mb * attn_fwd_flops(p, p->pair_len);
    const int64_t per_group = ceil_div(p->pairs, p->dp), n_fwd = ceil_div(per_group, mb);
    const double fill = n_fwd > 0 ? (double)per_group / ((double)n_fwd * (double)mb) : 0;
    p->t_ref_logp = (double)n_fwd * (fill * fwd_flops / flop_rate(p) +
                                     2.0 * L * t_allreduce(fwd_tokens * fill * D * 2, p->tp, p->tp_busbw_gbs,
                                                           p->tp_latency_us));
    /* DPO over the pairs */
    plan_train(p, &c->train.dpo, 1, p->pair_len, &p->dpo_iter);
    p->dpo_steps = (int64_t)ceil((double)p->pairs * c->train.dpo.epochs / c->train.dpo.batch_size);
    p->t_dpo = (double)p->dpo_steps * p->dpo_iter.t_step;
    p->t_iteration = p->self_instruct.t_total + p->candidates.t_total + p->judge.t_total + p->t_ref_logp + p->t_dpo;
    return SRLM_OK;
}

/* ---- what would fit ----------------------------------------------------- */

enum { FIT_TRAIN = 1, FIT_GEN = 2, FIT_ALL = 3 };

static int gen_fits(const srlm_plan *p) {
    return p->mem_gen <= p->mem_budget && p->self_instruct.batch >= 1 && p->candidates.batch >= 1 &&
           p->judge.batch >= 1;
}

static int fits_with(const srlm_config *c, const srlm_plan_arch *a, const srlm_plan_opts *o, int what) {
    srlm_plan q;
    if (srlm_plan_compute(c, a, o, &q) != SRLM_OK) return 0;
    if (what == FIT_GEN) return gen_fits(&q);
    if (what == FIT_TRAIN) return q.mem_train <= q.mem_budget;
    return q.fits;
}

/* Fewest nodes in [lo, MAX_NODES] that fit, or 0; fitting only gets easier
 * with more nodes (the optimizer shard shrinks, nothing grows). */
static int min_nodes(const srlm_config *c, const srlm_plan_arch *a, srlm_plan_opts o, int lo) {
    int hi = MAX_NODES < INT_MAX / o.gpus_per_node ? MAX_NODES : INT_MAX / o.gpus_per_node;
    if (lo > hi) return 0;
    o.nodes = hi;
    if (!fits_with(c, a, &o, FIT_ALL)) return 0;
    while (lo < hi) {
        o.nodes = lo + (hi - lo) / 2;
        if (fits_with(c, a, &o, FIT_ALL)) hi = o.nodes;
        else lo = o.nodes + 1;
    }
    return lo;
}

/* Largest value in [1, hi] of *knob for which the generation phase fits, or 0;
 * generation memory grows with the knob. */
static int max_gen_knob(srlm_config *c, const srlm_plan_arch *a, srlm_plan_opts *o, int *knob, int hi) {
    int keep = *knob, lo = 0;
    while (lo < hi) {
        *knob = lo + (hi - lo + 1) / 2;
        if (fits_with(c, a, o, FIT_GEN)) lo = *knob;
        else hi = *knob - 1;
    }
    *knob = keep;
    return lo;
}

/* The most examples of max_seq_len one micro-batch holds, sft or dpo. */
static int most_examples_per_micro(const srlm_plan *p) {
    return p->sft.examples_per_micro > p->dpo.examples_per_micro ? p->sft.examples_per_micro
                                                                 : p->dpo.examples_per_micro;
}

/* At most m examples of max_seq_len a micro-batch in both phases, through the
 * key that binds: micro_batch_tokens where it is set (it sizes the
 * activations then, so a lower micro_batch_size alone may change nothing),
 * else micro_batch_size. A phase already at m or below is left alone. */
static void cap_micro_batch(srlm_config *c, int m) {
    srlm_train_config *tc[2] = {&c->train.sft, &c->train.dpo};
    for (int i = 0; i < 2; i++) {
        if (examples_per_micro(tc[i], i == 1, tc[i]->max_seq_len) <= m) continue;
        if (tc[i]->micro_batch_tokens > 0)
            tc[i]->micro_batch_tokens = m * (i == 1 ? 2 : 1) * tc[i]->max_seq_len;
        else
            tc[i]->micro_batch_size = m;
    }
}

/* "train.sft.micro_batch_size at most 2, train.dpo.micro_batch_tokens at
 * most 4096": the keys cap_micro_batch(m) changes, with their new values. */
static void describe_micro_cap(const srlm_config *c, int m, char *buf, size_t size) {
    srlm_config cm = *c;
    cap_micro_batch(&cm, m);
    const srlm_train_config *was[2] = {&c->train.sft, &c->train.dpo}, *now[2] = {&cm.train.sft, &cm.train.dpo};
    const char *phase[2] = {"sft", "dpo"};
    size_t n = 0;
    buf[0] = '\0';
    for (int i = 0; i < 2; i++) {
        if (now[i]->micro_batch_size != was[i]->micro_batch_size && n < size)
            n += (size_t)snprintf(buf + n, size - n, "%strain.%s.micro_batch_size at most %d", n ? ", " : "",
                                  phase[i], now[i]->micro_batch_size);
        if (now[i]->micro_batch_tokens != was[i]->micro_batch_tokens && n < size)
            n += (size_t)snprintf(buf + n, size - n, "%strain.%s.micro_batch_tokens at most %d", n ? ", " : "",
                                  phase[i], now[i]->micro_batch_tokens);
    }
}

void srlm_plan_find_fixes(const srlm_plan *p, srlm_plan_fixes *f) {
    memset(f, 0, sizeof *f);
    if (p->fits) return;
    srlm_config c = *p->cfg; /* shallow: only numbers change */
    srlm_plan_opts o = p->opts;
    const srlm_plan_arch *a = &p->arch;
    const int G = o.gpus_per_node;

    /* generation first: the KV cache is the only generation term a user sets */
    if (!gen_fits(p)) {
        int budget_mb = (int)(p->mem_budget / MIB);
        if (o.gen_batch > 0) {
            f->gen_batch = max_gen_knob(&c, a, &o, &o.gen_batch, budget_mb);
            if (f->gen_batch) o.gen_batch = f->gen_batch;
        } else {
            f->kv_cache_mb = max_gen_knob(&c, a, &o, &c.generate.kv_cache_mb, budget_mb);
            if (f->kv_cache_mb) c.generate.kv_cache_mb = f->kv_cache_mb;
        }
        if (fits_with(&c, a, &o, FIT_ALL)) return;
    }

    for (int t = 1; t <= G; t++) {
        if (t == p->tp || !tp_valid(a, t) || G % t) continue;
        srlm_config ct = c;
        ct.parallel.tp = t;
        ct.parallel.dp = 0;
        if (fits_with(&ct, a, &o, FIT_ALL)) { f->tp = t; break; }
    }
    srlm_config cn = c;
    cn.parallel.dp = 0;
    f->nodes = min_nodes(&cn, a, o, o.nodes + 1);
    if (c.backend.dtype != SRLM_BF16) {
        srlm_config cb = c;
        cb.backend.dtype = SRLM_BF16;
        f->bf16 = fits_with(&cb, a, &o, FIT_ALL);
    }
    if (!c.train.sft.recompute || !c.train.dpo.recompute) {
        srlm_config cr = c;
        cr.train.sft.recompute = cr.train.dpo.recompute = true;
        f->recompute = fits_with(&cr, a, &o, FIT_ALL);
    }
    const int mb_max = most_examples_per_micro(p);
    for (int m = mb_max - 1; m >= 1; m--) {
        srlm_config cm = c;
        cap_micro_batch(&cm, m);
        if (fits_with(&cm, a, &o, FIT_ALL)) { f->micro_batch = m; break; }
    }
    if (f->tp || f->nodes || f->bf16 || f->recompute || f->micro_batch) return;

    /* nothing alone: recomputation on, then the fewest GPUs, the largest
     * micro-batch cap and the current tp (else the smallest) that fit together */
    srlm_config cc = c;
    cc.train.sft.recompute = cc.train.dpo.recompute = true;
    cc.parallel.dp = 0;
    for (int m = mb_max; m >= 1; m--) {
        cap_micro_batch(&cc, m);
        for (int k = 0; k <= G; k++) {
            int t = k == 0 ? p->tp : k; /* the current tp first */
            if ((k > 0 && t == p->tp) || !tp_valid(a, t) || G % t) continue;
            cc.parallel.tp = t;
            int n = min_nodes(&cc, a, o, o.nodes);
            if (n && (!f->combo_nodes || n < f->combo_nodes)) {
                f->combo_nodes = n;
                f->combo_tp = t;
                f->combo_micro_batch = m;
            }
        }
    }
}

/* ---- the refusal -------------------------------------------------------- */

static double gib(int64_t b) { return (double)b / GIB; }

#define APPEND(...)                                                                          \
    do {                                                                                     \
        if (n < sizeof msg) n += (size_t)snprintf(msg + n, sizeof msg - n, __VA_ARGS__);     \
    } while (0)

srlm_status srlm_plan_check_fit(const srlm_plan *p) {
    if (p->fits) return SRLM_OK;
    const srlm_config *c = p->cfg;
    char msg[1900];
    size_t n = 0;
    APPEND("does not fit in %.4g GiB per GPU (%d node(s) x %d GPUs, tp=%d, dp=%d)", p->opts.gpu_mem_gib,
           p->opts.nodes, p->opts.gpus_per_node, p->tp, p->dp);
    if (p->mem_train > p->mem_budget) {
        const srlm_plan_train *t = p->sft.act >= p->dpo.act ? &p->sft : &p->dpo;
        const char *phase = t == &p->sft ? "sft" : "dpo";
        APPEND(": training needs %.1f GiB per rank (weights %.1f + gradients %.1f + optimizer %.1f + activations "
               "%.1f + reserve %.1f); too large: ", gib(p->mem_train), gib(p->mem_weights), gib(p->mem_grads),
               gib(p->mem_optimizer), gib(t->act), gib(p->mem_reserve));
        /* what no dp can shard comes first, then the larger of the other two */
        if (p->mem_weights + p->mem_grads + p->mem_reserve > p->mem_budget) {
            APPEND("fp32 gradients %.1f GiB and %s weights %.1f GiB (%d B x %.3g billion params held at tp=%d; "
                   "only a larger tp shards them%s)", gib(p->mem_grads), p->weight_bytes == 2 ? "bf16" : "fp32",
                   gib(p->mem_weights), 4 + p->weight_bytes, (double)p->params_held / 1e9, p->tp,
                   p->weight_bytes == 4 ? ", or backend.dtype: bfloat16" : "");
        } else if (p->mem_optimizer >= t->act) {
            APPEND("optimizer state %.1f GiB (%s: %d B x %.3g billion held params / dp=%d, "
                   "ZeRO-1; more nodes shard it further)", gib(p->mem_optimizer),
                   p->optimizer_bytes == 12 ? "fp32 master, m, v" : "m, v", p->optimizer_bytes,
                   (double)p->params_held / 1e9, p->dp);
        } else {
            APPEND("activations of train.%s %.1f GiB (%lld tokens a micro-batch, recompute %s)", phase, gib(t->act),
                   (long long)t->act_tokens, t->recompute ? "on" : "off");
        }
    }
    if (!gen_fits(p)) {
        const srlm_plan_gen *g[3] = {&p->self_instruct, &p->candidates, &p->judge};
        const char *names[3] = {"self-instruct", "candidate", "judge"};
        int short_kv = -1;
        for (int i = 0; i < 3; i++)
            if (g[i]->batch < 1 && short_kv < 0) short_kv = i;
        if (short_kv >= 0)
            APPEND("; generation: the KV cache (%.2f GiB, %lld tokens) holds not one %s sequence of %d tokens",
                   gib(p->mem_kv), (long long)p->kv_tokens, names[short_kv],
                   g[short_kv]->prompt_len + g[short_kv]->new_tokens);
        else
            APPEND("; generation needs %.1f GiB per rank; too large: the KV cache %.1f GiB (%s)", gib(p->mem_gen),
                   gib(p->mem_kv), p->opts.gen_batch > 0 ? "--gen-batch" : "generate.kv_cache_mb");
    }
    srlm_plan_fixes f;
    srlm_plan_find_fixes(p, &f);
    const int G = p->opts.gpus_per_node;
    const int gen_fix = f.kv_cache_mb || f.gen_batch;
    const int train_fix = f.nodes || f.tp || f.bf16 || f.recompute || f.micro_batch || f.combo_nodes;
    if (gen_fix || train_fix) APPEND(". Would fit:");
    if (f.kv_cache_mb) {
        /* a cache too small for one sequence needs at least this much */
        int64_t need = 0;
        const srlm_plan_gen *g[3] = {&p->self_instruct, &p->candidates, &p->judge};
        for (int i = 0; i < 3; i++)
            if ((int64_t)(g[i]->prompt_len + g[i]->new_tokens) * p->kv_per_token > need)
                need = (int64_t)(g[i]->prompt_len + g[i]->new_tokens) * p->kv_per_token;
        if (p->kv_tokens * p->kv_per_token < need)
            APPEND(" generate.kv_cache_mb from %lld to %d", (long long)((need + MIB - 1) / MIB), f.kv_cache_mb);
        else
            APPEND(" generate.kv_cache_mb up to %d", f.kv_cache_mb);
    }
    if (f.gen_batch) APPEND(" --gen-batch up to %d", f.gen_batch);
    if (gen_fix && train_fix) APPEND(", and for training");
    int alts = 0;
    if (f.nodes) {
        int dp = f.nodes * G / p->tp;
        APPEND("%s --nodes %d (dp=%d%s: optimizer state %.1f GiB per rank)", alts++ ? "; or" : "", f.nodes, dp,
               c->parallel.dp > 0 ? ", parallel.dp=0" : "",
               gib((int64_t)p->optimizer_bytes * ((p->params_held + dp - 1) / dp)));
    }
    if (f.tp)
        APPEND("%s parallel.tp=%d (dp=%d%s)", alts++ ? "; or" : "", f.tp, p->world / f.tp,
               c->parallel.dp > 0 ? ", parallel.dp=0" : "");
    if (f.bf16)
        APPEND("%s backend.dtype=bfloat16 (weights %.1f -> %.1f GiB, optimizer %.1f -> %.1f GiB)", alts++ ? "; or" : "",
               gib(p->mem_weights), gib(p->mem_weights / 2), gib(p->mem_optimizer),
               gib(p->mem_optimizer / 8 * 12));
    if (f.recompute)
        APPEND("%s train.sft.recompute=true train.dpo.recompute=true (activations %.1f -> %.1f GiB)",
               alts++ ? "; or" : "", gib(p->sft.act > p->dpo.act ? p->sft.act : p->dpo.act),
               gib(p->sft.act_recompute > p->dpo.act_recompute ? p->sft.act_recompute : p->dpo.act_recompute));
    char cap[200];
    if (f.micro_batch) {
        describe_micro_cap(c, f.micro_batch, cap, sizeof cap);
        APPEND("%s %s (%d examples a micro-batch)", alts++ ? "; or" : "", cap, f.micro_batch);
    }
    if (f.combo_nodes) {
        /* name only what changes: "A, B and C together" */
        char items[4][200];
        int k = 0;
        if (!c->train.sft.recompute || !c->train.dpo.recompute) snprintf(items[k++], 200, "recomputation on");
        describe_micro_cap(c, f.combo_micro_batch, cap, sizeof cap);
        if (cap[0]) snprintf(items[k++], 200, "%s", cap);
        if (f.combo_tp != p->tp) snprintf(items[k++], 200, "parallel.tp=%d", f.combo_tp);
        if (f.combo_nodes != p->opts.nodes) snprintf(items[k++], 200, "--nodes %d", f.combo_nodes);
        APPEND("%s", alts++ ? "; or" : "");
        for (int i = 0; i < k; i++) APPEND("%s%s", i == 0 ? " " : i == k - 1 ? " and " : ", ", items[i]);
        APPEND("%s (dp=%d)", k > 1 ? " together" : "", f.combo_nodes * G / f.combo_tp);
    }
    if (!train_fix && p->mem_train > p->mem_budget)
        APPEND("%s up to %d nodes fits training: use GPUs with more memory (--gpu-mem), a larger tp on "
               "nodes with more GPUs, or shorter sequences (train.*.max_seq_len)",
               gen_fix ? "; but nothing" : ". Nothing", MAX_NODES);
    return SRLM_ERR(SRLM_BAD_INPUT, "%s", msg);
}
