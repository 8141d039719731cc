#include "pipeline/plan_report.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define GIB 1073741824.0

typedef enum { V_COUNT, V_BYTES, V_SECONDS, V_NUMBER, V_BOOL } vkind;

typedef struct {
    const char *section, *key;
    vkind       kind;
    double      value;
    char        how[360]; /* the formula with this plan's numbers */
} row;

typedef struct {
    row rows[96];
    int n;
} rows;

static const struct { const char *key, *title; } SECTIONS[] = {
    {"model",       "model"},
    {"layout",      "layout (one rank per GPU)"},
    {"memory",      "memory per rank (GiB = 2^30 B)"},
    {"train_sft",   "train.sft optimizer step (sequences of max_seq_len)"},
    {"train_dpo",   "train.dpo optimizer step (sequences of max_seq_len)"},
    {"iteration",   "one self-rewarding iteration (M_t -> M_t+1)"},
    {"assumptions", "assumptions (cluster.* in the config; the rest are flags)"},
};

/* Ordered assumptions that are not numbers. */
static const char *const NOTES[] = {
    "every generated sequence runs to its max_new_tokens (an upper bound)",
    ("every training sequence is max_seq_len tokens (an upper bound: micro-batches are packed, so a shorter "
     "sequence costs only its own tokens)"),
    "compute and communication do not overlap (an upper bound)",
    ("decode step = max(HBM time to read the rank's weights and its batch's KV, FLOPs time)"
     " + 2 TP all-reduces per layer"),
    "prefill and training run at the assumed MFU; the attention FLOPs are causal (half of s^2)",
    "the KV budget holds whole sequences (shared prefixes would fit more)",
    "the self-instruct prompt model is the size of M_t; evaluation, checkpoints and model loading are not timed",
    "generation holds no gradients or optimizer state (the trainer is done by then)",
    "every self-instruct prompt passes the filters and is answered (an upper bound)",
    "memory is the CUDA backend's layout (the CPU backend keeps fp32 weights: 4 + 4 + 8/dp B per parameter)",
};

static void add(rows *r, const char *section, const char *key, vkind kind, double value, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static void add(rows *r, const char *section, const char *key, vkind kind, double value, const char *fmt, ...) {
    if (r->n >= (int)(sizeof r->rows / sizeof r->rows[0])) return;
    row *w = &r->rows[r->n++];
    w->section = section;
    w->key = key;
    w->kind = kind;
    w->value = value;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->how, sizeof w->how, fmt, ap);
    va_end(ap);
}

/* 68976648192 -> "68,976,648,192" (in a rotating buffer: several per printf) */
static const char *commas(double v) {
    static _Thread_local char bufs[8][40];
    static _Thread_local int k;
    char *out = bufs[k++ % 8], digits[32];
    long long x = llround(v);
    int n = snprintf(digits, sizeof digits, "%lld", x < 0 ? -x : x), j = 0;
    if (x < 0) out[j++] = '-';
    for (int i = 0; i < n; i++) {
        if (i > 0 && (n - i) % 3 == 0) out[j++] = ',';
        out[j++] = digits[i];
    }
    out[j] = '\0';
    return out;
}

static const char *duration(double s) {
    static _Thread_local char bufs[8][32];
    static _Thread_local int k;
    char *out = bufs[k++ % 8];
    if (s == 0) snprintf(out, 32, "0");
    else if (s < 1e-3) snprintf(out, 32, "%.1f us", s * 1e6);
    else if (s < 1) snprintf(out, 32, "%.2f ms", s * 1e3);
    else if (s < 120) snprintf(out, 32, "%.2f s", s);
    else if (s < 7200) snprintf(out, 32, "%.1f min", s / 60);
    else snprintf(out, 32, "%.2f h", s / 3600);
    return out;
}

static double gib(int64_t b) { return (double)b / GIB; }

static void train_rows(rows *r, const srlm_plan *p, const char *sec, const char *phase, const srlm_plan_train *t,
                       const srlm_train_config *tc) {
    const srlm_plan_arch *a = &p->arch;
    const srlm_config *c = p->cfg;
    const int dpo = !strcmp(phase, "dpo");
    if (tc->micro_batch_tokens > 0)
        add(r, sec, "tokens_per_micro_batch", V_COUNT, (double)t->seqs_per_micro * t->seq_len,
            "%d%s x max_seq_len %d (micro_batch_size %d, at most micro_batch_tokens %d; activations sized for %s)",
            t->examples_per_micro, dpo ? " pairs x 2 sequences" : "", t->seq_len, tc->micro_batch_size,
            tc->micro_batch_tokens, commas((double)t->act_tokens));
    else
        add(r, sec, "tokens_per_micro_batch", V_COUNT, (double)t->seqs_per_micro * t->seq_len,
            "micro_batch_size %d%s x max_seq_len %d", tc->micro_batch_size, dpo ? " pairs x 2 sequences" : "",
            t->seq_len);
    add(r, sec, "micro_batches", V_COUNT, t->micro_steps,
        "per rank per step: ceil(ceil(batch_size %d / dp %d) / %d examples per micro-batch)", tc->batch_size, p->dp,
        t->examples_per_micro);
    add(r, sec, "flops_per_micro_batch", V_NUMBER, t->flops_micro,
        "per rank: %d x Pm %s x %s tokens / tp %d + %d x %d seqs x 2 x L %d x s^2 x %d heads x hd %d (causal "
        "attention)", 6 + 2 * t->recompute, commas((double)p->params_matmul),
        commas((double)t->seqs_per_micro * t->seq_len), p->tp, 3 + t->recompute, t->seqs_per_micro, a->n_layers,
        p->heads_local, a->head_dim);
    char fill[64] = ""; /* a last micro-batch that is not full costs its share */
    if (t->micro_fill < 1) snprintf(fill, sizeof fill, " x %.3g full on average", t->micro_fill);
    add(r, sec, "compute_s", V_SECONDS, t->t_compute, "%d%s x FLOPs / (%g TFLOP/s x MFU %g)%s", t->micro_steps, fill,
        c->cluster.gpu_tflops, c->cluster.mfu, t->recompute ? "; recompute adds a forward (2 x Pm x tokens)" : "");
    if (p->tp > 1)
        add(r, sec, "tp_comm_s", V_SECONDS, t->t_tp,
            "%d x %d all-reduces (%s per layer) x (%g us + 2(tp-1)/tp x %s B%s / %g GB/s)", t->micro_steps,
            t->tp_allreduces, t->recompute ? "2 fwd + 2 bwd + 2 recompute" : "2 fwd + 2 bwd",
            p->tp_latency_us, commas((double)t->tp_bytes), fill, p->tp_busbw_gbs);
    else
        add(r, sec, "tp_comm_s", V_SECONDS, 0, "tp = 1: no tensor-parallel all-reduces");
    if (p->dp > 1)
        add(r, sec, "dp_comm_s", V_SECONDS, t->t_dp,
            "ZeRO-1 over dp %d: reduce-scatter fp32 grads (4 B x held) + all-gather the weights (%d B x held), "
            "each %g us + (dp-1)/dp x bytes / %g GB/s", p->dp, p->weight_bytes, p->dp_latency_us, p->dp_busbw_gbs);
    else
        add(r, sec, "dp_comm_s", V_SECONDS, 0, "dp = 1: no gradient reduction");
    add(r, sec, "optimizer_s", V_SECONDS, t->t_optimizer,
        p->weight_bytes == 2 ? "AdamW: (28 + 6 + 4 x dp, or 34 at dp 1) B x %s shard params / %g GB/s (read grad, master, m, v; "
                               "write master, m, v; round the master shard to bf16; copy the gathered weights in)"
                             : "AdamW: 28 B x %s shard params / %g GB/s (read grad, weight, m, v; write weight, m, v)",
        commas((double)p->params_shard), c->cluster.hbm_gbps);
    add(r, sec, "step_s", V_SECONDS, t->t_step, "compute + tp + dp + optimizer");
    add(r, sec, "tokens_per_s", V_NUMBER, t->tokens_per_s, "batch_size %d x %s%d tokens / step, whole cluster",
        tc->batch_size, dpo ? "2 x " : "", t->seq_len);
}

static void act_rows(rows *r, const srlm_plan *p, const char *phase, const srlm_plan_train *t, const char *k_cfg,
                     const char *k_full, const char *k_rc) {
    const double tokens = (double)t->act_tokens;
    const int L = p->arch.n_layers;
    add(r, "memory", k_cfg, V_BYTES, (double)t->act, "train.%s, recompute %s (configured; one of the two below)",
        phase, t->recompute ? "on" : "off");
    add(r, "memory", k_full, V_BYTES, (double)t->act_full,
        "%s tokens x (%d layers x %s B + %s B outside the layers) + logits %s B", commas(tokens), L,
        commas((double)t->act_layer_token), commas((double)t->act_outside_token), commas((double)t->act_logits));
    add(r, "memory", k_rc, V_BYTES, (double)t->act_recompute,
        "%s tokens x (%d layers x 2 D + one layer %s B + %s B outside) + logits %s B", commas(tokens), L,
        commas((double)t->act_layer_token), commas((double)t->act_outside_token), commas((double)t->act_logits));
}

static void gen_row(rows *r, const srlm_plan *p, const char *key, const char *what, const srlm_plan_gen *g) {
    if (g->batch < 1) {
        add(r, "iteration", key, V_SECONDS, 0, "%s: the KV cache holds not one sequence of %d tokens", what,
            g->prompt_len + g->new_tokens);
        return;
    }
    add(r, "iteration", key, V_SECONDS, g->t_total,
        "%s sequences of %d prompt + %d new tokens; %s items of %d / %d groups = %s per group x %s; item = "
        "%lld batch(es) of %d x (prefill %s + %d steps x %s)",
        commas((double)g->sequences), g->prompt_len, g->new_tokens, commas((double)g->items), g->item_seqs, p->dp,
        commas((double)g->items_per_group), duration(g->t_item),
        (long long)((g->item_seqs + g->batch - 1) / g->batch), g->batch, duration(g->t_prefill), g->new_tokens,
        duration(g->t_decode_step));
}

static void build(rows *r, const srlm_plan *p) {
    const srlm_plan_arch *a = &p->arch;
    const srlm_config *c = p->cfg;
    const srlm_plan_opts *o = &p->opts;
    r->n = 0;

    add(r, "model", "parameters", V_COUNT, (double)p->params,
        "%s x V %d x D %d + L %d x (2 D H hd + 2 D KV hd + 3 D F + 2 D) + D; H %d, KV %d, hd %d, F %d",
        a->tied ? "1" : "2", a->vocab, a->dim, a->n_layers, a->n_heads, a->n_kv_heads, a->head_dim, a->ffn);
    add(r, "model", "parameters_per_rank", V_COUNT, (double)p->params_held,
        "%s x V_pad %d / tp x D + L x (%d of %d heads, %d KV head(s)%s, %d of %d F, norms replicated) + D",
        a->tied ? "1" : "2", p->vocab_padded, p->heads_local, a->n_heads, p->kv_local,
        p->tp > a->n_kv_heads ? " copied: tp > KV heads" : "", p->ffn_local, a->ffn);
    add(r, "model", "parameters_matmul", V_COUNT, (double)p->params_matmul,
        "Pm = parameters - V x D embedding (a lookup) - norms: 2 FLOPs per token each, forward");

    add(r, "layout", "world", V_COUNT, p->world, "%d node(s) x %d GPUs", o->nodes, o->gpus_per_node);
    add(r, "layout", "tp", V_COUNT, p->tp, "parallel.tp; consecutive ranks on one node");
    add(r, "layout", "dp", V_COUNT, p->dp, "%s", c->parallel.dp > 0 ? "parallel.dp" : "world / tp (parallel.dp = 0)");
    add(r, "layout", "dp_spans_nodes", V_BOOL, p->dp_spans_nodes, "%d tp group(s) per node", p->groups_per_node);
    add(r, "layout", "tp_busbw_gbs", V_NUMBER, p->tp_busbw_gbs, "intra-node bus bandwidth; %g us per collective",
        p->tp_latency_us);
    if (p->dp_spans_nodes)
        add(r, "layout", "dp_busbw_gbs", V_NUMBER, p->dp_busbw_gbs,
            "min(intra %g, inter %g GB/s x %d NICs / %d concurrent dp collectives per node); %g us per collective",
            c->cluster.intra_node_busbw_gbs, c->cluster.inter_node_busbw_gbs, c->cluster.nics_per_node, p->tp,
            p->dp_latency_us);
    else
        add(r, "layout", "dp_busbw_gbs", V_NUMBER, p->dp_busbw_gbs, "dp inside one node: intra-node; %g us",
            p->dp_latency_us);

    add(r, "memory", "weights", V_BYTES, (double)p->mem_weights, "%d B (backend.dtype %s) x %s params held",
        p->weight_bytes, p->weight_bytes == 2 ? "bfloat16" : "float32", commas((double)p->params_held));
    add(r, "memory", "gradients", V_BYTES, (double)p->mem_grads, "4 B (fp32) x %s params held",
        commas((double)p->params_held));
    add(r, "memory", "optimizer", V_BYTES, (double)p->mem_optimizer,
        "%d B (%s) x ceil(held / dp %d) = %s params (ZeRO-1)", p->optimizer_bytes,
        p->optimizer_bytes == 12 ? "fp32 master, m, v" : "m, v", p->dp, commas((double)p->params_shard));
    act_rows(r, p, "sft", &p->sft, "activations_sft", "activations_sft_no_recompute", "activations_sft_recompute");
    act_rows(r, p, "dpo", &p->dpo, "activations_dpo", "activations_dpo_no_recompute", "activations_dpo_recompute");
    add(r, "memory", "reserve", V_BYTES, (double)p->mem_reserve,
        "2 GiB (CUDA context, cuBLAS and NCCL workspaces) + 5%% of %g GiB (allocator fragmentation)", o->gpu_mem_gib);
    if (o->gen_batch > 0)
        add(r, "memory", "kv_cache", V_BYTES, (double)p->mem_kv,
            "--gen-batch %d x longest sequence x %s B/token (2 x L %d x %d KV head(s) x hd %d x 2 B)", o->gen_batch,
            commas((double)p->kv_per_token), a->n_layers, p->kv_local, a->head_dim);
    else
        add(r, "memory", "kv_cache", V_BYTES, (double)p->mem_kv,
            "generate.kv_cache_mb %d MiB = %s tokens x %s B/token (2 x L %d x %d KV head(s) x hd %d x 2 B)",
            c->generate.kv_cache_mb, commas((double)p->kv_tokens), commas((double)p->kv_per_token), a->n_layers,
            p->kv_local, a->head_dim);
    add(r, "memory", "decode_logits", V_BYTES, (double)p->mem_decode_logits,
        "largest decode batch x V_pad %d x 4 B (gathered for sampling)", p->vocab_padded);
    add(r, "memory", "generation_activations", V_BYTES, (double)p->mem_gen_acts,
        "%s prefill rows x (3 D + 4 q + 4 kv + 2 ffn widths) + %s logit rows x V_pad/tp, %d B each",
        commas((double)p->gen_act_tokens), commas((double)p->gen_logit_rows), p->weight_bytes);
    add(r, "memory", "training_total", V_BYTES, (double)p->mem_train,
        "weights + gradients + optimizer + the larger configured activations + reserve");
    add(r, "memory", "generation_total", V_BYTES, (double)p->mem_gen,
        "weights + KV cache + decode logits + generation activations + reserve");
    add(r, "memory", "peak", V_BYTES, (double)p->mem_peak, "max(training, generation)");
    add(r, "memory", "budget", V_BYTES, (double)p->mem_budget, "--gpu-mem %g GiB", o->gpu_mem_gib);
    add(r, "memory", "fits", V_BOOL, p->fits, "peak <= budget and the KV cache holds a sequence of every phase");
    add(r, "memory", "unsharded_16B_per_param", V_BYTES, (double)p->mem_unsharded16,
        "reference: 16 B x %s params on one device (2 weight + 2 grad + 12 Adam, before sharding; srlm keeps "
        "fp32 grads: 18 B)", commas((double)p->params));

    train_rows(r, p, "train_sft", "sft", &p->sft, &c->train.sft);
    add(r, "train_sft", "activation_bytes_per_token_layer", V_COUNT, (double)p->sft.act_layer_token,
        "%s + (4 H hd + 4 KV hd + 6 F) / tp + 4 H / tp: norms in/out%s; Q, K, V, attention out, gate, up, "
        "SwiGLU; fp32 log-sum-exp", c->train.sft.dropout > 0 ? "10 D" : "8 D",
        c->train.sft.dropout > 0 ? " + 2 dropout masks" : "");
    train_rows(r, p, "train_dpo", "dpo", &p->dpo, &c->train.dpo);
    add(r, "train_dpo", "activation_bytes_per_token_layer", V_COUNT, (double)p->dpo.act_layer_token,
        "%s + (4 H hd + 4 KV hd + 6 F) / tp + 4 H / tp, as for sft", c->train.dpo.dropout > 0 ? "10 D" : "8 D");

    gen_row(r, p, "self_instruct_s", "self-instruct", &p->self_instruct);
    gen_row(r, p, "candidates_s", "candidates", &p->candidates);
    gen_row(r, p, "judge_s", "judgements", &p->judge);
    add(r, "iteration", "pairs", V_COUNT, (double)p->pairs, "--pair-rate %g x %d prompts", o->pair_rate,
        c->self_instruct.prompts_per_iteration);
    add(r, "iteration", "ref_logp_s", V_SECONDS, p->t_ref_logp,
        "ceil(ceil(pairs / dp %d) / %d pairs per forward) forwards of 2 x %d x %d tokens (the pairs a train.dpo "
        "micro-batch's tokens hold, at most 32), a last one at its share: (2 Pm tokens / tp + attention) / "
        "(peak x MFU) + 2 L all-reduces", p->dp, p->ref_pairs_per_fwd, p->ref_pairs_per_fwd, p->pair_len);
    add(r, "iteration", "dpo_steps", V_COUNT, (double)p->dpo_steps, "ceil(pairs x epochs %g / batch_size %d)",
        c->train.dpo.epochs, c->train.dpo.batch_size);
    add(r, "iteration", "dpo_s", V_SECONDS, p->t_dpo,
        "steps x %s per step (sequences of %d = prompt + max_new_tokens, capped by max_seq_len; compute %s, tp %s, "
        "dp %s)", duration(p->dpo_iter.t_step), p->pair_len, duration(p->dpo_iter.t_compute),
        duration(p->dpo_iter.t_tp), duration(p->dpo_iter.t_dp));
    add(r, "iteration", "iteration_s", V_SECONDS, p->t_iteration,
        "self-instruct + candidates + judgements + reference log-probs + DPO");

    add(r, "assumptions", "gpu_tflops", V_NUMBER, c->cluster.gpu_tflops, "cluster.gpu_tflops: bf16 dense peak");
    add(r, "assumptions", "mfu", V_NUMBER, c->cluster.mfu, "cluster.mfu: share of the peak reached");
    add(r, "assumptions", "hbm_gbps", V_NUMBER, c->cluster.hbm_gbps, "cluster.hbm_gbps: decode bandwidth");
    add(r, "assumptions", "intra_node_busbw_gbs", V_NUMBER, c->cluster.intra_node_busbw_gbs,
        "cluster.intra_node_busbw_gbs (nccl-tests all_reduce busbw)");
    add(r, "assumptions", "inter_node_busbw_gbs", V_NUMBER, c->cluster.inter_node_busbw_gbs,
        "cluster.inter_node_busbw_gbs, per NIC");
    add(r, "assumptions", "nics_per_node", V_COUNT, c->cluster.nics_per_node, "cluster.nics_per_node");
    add(r, "assumptions", "intra_node_latency_us", V_NUMBER, c->cluster.intra_node_latency_us,
        "cluster.intra_node_latency_us, per collective");
    add(r, "assumptions", "inter_node_latency_us", V_NUMBER, c->cluster.inter_node_latency_us,
        "cluster.inter_node_latency_us, per collective");
    add(r, "assumptions", "prompt_tokens", V_COUNT, o->prompt_tokens, "--prompt-tokens: mean user prompt");
    add(r, "assumptions", "template_tokens", V_COUNT, o->template_tokens,
        "--template-tokens: judge rubric / self-instruct instructions");
    add(r, "assumptions", "pair_rate", V_NUMBER, o->pair_rate, "--pair-rate: DPO pairs per prompt");
}

static void format_value(const row *w, char *buf, size_t cap) {
    switch (w->kind) {
    case V_COUNT:   snprintf(buf, cap, "%s", commas(w->value)); break;
    case V_BYTES:   snprintf(buf, cap, "%.2f GiB", w->value / GIB); break;
    case V_SECONDS: snprintf(buf, cap, "%s", duration(w->value)); break;
    case V_NUMBER:  snprintf(buf, cap, "%.4g", w->value); break;
    case V_BOOL:    snprintf(buf, cap, "%s", w->value != 0 ? "yes" : "no"); break;
    }
}

void srlm_plan_print_table(const srlm_plan *p, const char *title, FILE *out) {
    rows *r = malloc(sizeof *r);
    if (!r) return;
    build(r, p);
    fprintf(out, "srlm plan: %s\n", title);
    for (size_t s = 0; s < sizeof SECTIONS / sizeof SECTIONS[0]; s++) {
        fprintf(out, "\n%s\n", SECTIONS[s].title);
        for (int i = 0; i < r->n; i++) {
            if (strcmp(r->rows[i].section, SECTIONS[s].key) != 0) continue;
            char v[48];
            format_value(&r->rows[i], v, sizeof v);
            fprintf(out, "  %-34s %16s   %s\n", r->rows[i].key, v, r->rows[i].how);
        }
        if (!strcmp(SECTIONS[s].key, "assumptions"))
            for (size_t k = 0; k < sizeof NOTES / sizeof NOTES[0]; k++) fprintf(out, "  - %s\n", NOTES[k]);
    }
    fprintf(out, "\n%s: peak %.2f GiB of %.4g GiB per GPU\n", p->fits ? "fits" : "DOES NOT FIT", gib(p->mem_peak),
            p->opts.gpu_mem_gib);
    free(r);
}

srlm_status srlm_plan_print_json(const srlm_plan *p, const char *title, FILE *out) {
    srlm_status st = SRLM_OK;
    rows *r = malloc(sizeof *r);
    cJSON *root = cJSON_CreateObject(), *formulas = NULL, *notes = NULL;
    char *text = NULL;
    if (!r || !root) goto oom;
    build(r, p);
    if (!cJSON_AddStringToObject(root, "title", title) || !cJSON_AddBoolToObject(root, "fits", p->fits) ||
        !cJSON_AddStringToObject(root, "units", "memory in bytes, keys ending _s in seconds, _gbs in GB/s"))
        goto oom;
    for (size_t s = 0; s < sizeof SECTIONS / sizeof SECTIONS[0]; s++) {
        cJSON *sec = cJSON_AddObjectToObject(root, SECTIONS[s].key);
        if (!sec) goto oom;
        for (int i = 0; i < r->n; i++) {
            const row *w = &r->rows[i];
            if (strcmp(w->section, SECTIONS[s].key) != 0) continue;
            /* counts and bytes are exact integers below 2^53; cJSON prints them whole */
            cJSON *v = w->kind == V_BOOL ? cJSON_CreateBool(w->value != 0) : cJSON_CreateNumber(w->value);
            if (!v) goto oom;
            cJSON_AddItemToObject(sec, w->key, v);
        }
    }
    formulas = cJSON_AddObjectToObject(root, "formulas");
    notes = cJSON_AddArrayToObject(root, "notes");
    if (!formulas || !notes) goto oom;
    for (int i = 0; i < r->n; i++) {
        char k[96];
        snprintf(k, sizeof k, "%s.%s", r->rows[i].section, r->rows[i].key);
        if (!cJSON_AddStringToObject(formulas, k, r->rows[i].how)) goto oom;
    }
    for (size_t k = 0; k < sizeof NOTES / sizeof NOTES[0]; k++) {
        cJSON *s = cJSON_CreateString(NOTES[k]);
        if (!s) goto oom;
        cJSON_AddItemToArray(notes, s);
    }
    text = cJSON_Print(root);
    if (!text) goto oom;
    fprintf(out, "%s\n", text);
    goto done;
oom:
    st = SRLM_ERR(SRLM_FAILED, "out of memory writing the plan as JSON");
done:
    free(text);
    cJSON_Delete(root);
    free(r);
    return st;
}
