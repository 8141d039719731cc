/* Llama-2 forward on the backend ops table, tensor-parallel by construction. */
#include "model/llama.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/watchdog.h"

/* ---- shapes and the tensor-parallel split ---- */

static srlm_status plan_shapes(srlm_llama *m, int tp_rank, int tp_size) {
    const srlm_hf_config *c = &m->cfg;
    m->dim = c->hidden_size;
    m->n_layers = c->num_hidden_layers;
    m->head_dim = c->head_dim;
    m->tp_rank = tp_rank;
    m->tp_size = tp_size;
    int nh = c->num_attention_heads, nkv = c->num_key_value_heads;
    if (nh % tp_size)
        return SRLM_ERR(SRLM_BAD_INPUT, "tp=%d does not divide num_attention_heads=%d", tp_size, nh);
    if (nkv % tp_size && tp_size % nkv)
        return SRLM_ERR(SRLM_BAD_INPUT,
                        "tp=%d and num_key_value_heads=%d: one must divide the other", tp_size, nkv);
    if (c->intermediate_size % tp_size)
        return SRLM_ERR(SRLM_BAD_INPUT, "tp=%d does not divide intermediate_size=%d", tp_size,
                        c->intermediate_size);
    if (m->head_dim % 2 || m->head_dim > 1024)
        return SRLM_ERR(SRLM_BAD_INPUT, "head_dim=%d: expected an even number up to 1024", m->head_dim);
    m->n_heads_local = nh / tp_size;
    m->n_kv_local = nkv >= tp_size ? nkv / tp_size : 1; /* tp > nkv: each rank keeps a copy */
    m->ffn_local = c->intermediate_size / tp_size;
    int unit = 64 * tp_size;
    m->vocab_padded = (c->vocab_size + unit - 1) / unit * unit;
    m->vocab_local = m->vocab_padded / tp_size;
    m->vocab_start = tp_rank * m->vocab_local;
    return SRLM_OK;
}

/* The first KV head this rank holds: its own slice, or (tp > nkv) the head its
 * query heads read. */
static int kv_head_start(const srlm_llama *m) {
    int nkv = m->cfg.num_key_value_heads;
    if (nkv >= m->tp_size) return m->tp_rank * m->n_kv_local;
    int q_per_kv = m->cfg.num_attention_heads / nkv;
    return m->tp_rank * m->n_heads_local / q_per_kv;
}

/* Carve the per-tensor views out of one flat buffer, in the fixed order that
 * weights, gradients and optimizer state all share. */
static void carve_weights(const srlm_llama *m, srlm_view flat, srlm_view *embed,
                          srlm_llama_layer *layers, srlm_view *final_norm, srlm_view *lm_head) {
    const int D = m->dim, hd = m->head_dim;
    const int qd = m->n_heads_local * hd, kvd = m->n_kv_local * hd, F = m->ffn_local;
    int64_t off = 0;
#define CARVE(field, r, c) (field = srlm_view_carve(flat, off, (r), (c)), off += (int64_t)(r) * (c))
    CARVE(*embed, m->vocab_local, D);
    for (int l = 0; l < m->n_layers; l++) {
        srlm_llama_layer *ly = &layers[l];
        CARVE(ly->attn_norm, 1, D);
        CARVE(ly->wq, qd, D);
        CARVE(ly->wk, kvd, D);
        CARVE(ly->wv, kvd, D);
        CARVE(ly->wo, D, qd);
        CARVE(ly->mlp_norm, 1, D);
        CARVE(ly->w_gate, F, D);
        CARVE(ly->w_up, F, D);
        CARVE(ly->w_down, D, F);
    }
    CARVE(*final_norm, 1, D);
    if (m->tied) *lm_head = *embed;
    else CARVE(*lm_head, m->vocab_local, D);
#undef CARVE
}

srlm_status srlm_llama_grads_new(srlm_llama_grads *g, const srlm_llama *m, int64_t min_elems) {
    memset(g, 0, sizeof *g);
    g->layers = calloc((size_t)m->n_layers, sizeof *g->layers);
    if (!g->layers) return SRLM_ERR(SRLM_FAILED, "out of memory for the gradient table");
    int64_t n = min_elems > m->n_params_local ? min_elems : m->n_params_local;
    srlm_status st = m->be->ops->alloc(m->be, &g->flat, SRLM_F32, 1, n, "gradients");
    if (st != SRLM_OK) { free(g->layers); g->layers = NULL; return st; }
    carve_weights(m, g->flat, &g->embed, g->layers, &g->final_norm, &g->lm_head);
    return SRLM_OK;
}

srlm_status srlm_llama_segments(const srlm_llama *m, srlm_param_segment **segs, int *n) {
    srlm_param_segment *s = calloc((size_t)m->n_layers * 9 + 3, sizeof *s);
    if (!s) return SRLM_ERR(SRLM_FAILED, "out of memory");
    const char *base = m->params.data;
    const size_t es = srlm_dtype_size(m->params.dtype);
    const int tp0 = m->tp_rank == 0, kv0 = srlm_comm_rank(m->kv_group) == 0;
    int k = 0;
#define SEG(v, dec, cnt) \
    (s[k++] = (srlm_param_segment){(int64_t)(((const char *)(v).data - base) / (ptrdiff_t)es), (v).rows * (v).cols, (dec), (cnt)})
    SEG(m->embed, 1, 1); /* vocab-parallel: each rank its own rows */
    for (int l = 0; l < m->n_layers; l++) {
        const srlm_llama_layer *ly = &m->layers[l];
        SEG(ly->attn_norm, 0, tp0); /* replicated on every tp rank */
        SEG(ly->wq, 1, 1);
        SEG(ly->wk, 1, kv0);        /* replicated when tp > n_kv_heads */
        SEG(ly->wv, 1, kv0);
        SEG(ly->wo, 1, 1);
        SEG(ly->mlp_norm, 0, tp0);
        SEG(ly->w_gate, 1, 1);
        SEG(ly->w_up, 1, 1);
        SEG(ly->w_down, 1, 1);
    }
    SEG(m->final_norm, 0, tp0);
    if (!m->tied) SEG(m->lm_head, 1, 1);
#undef SEG
    *segs = s;
    *n = k;
    return SRLM_OK;
}

srlm_status srlm_llama_grads_zero(srlm_llama_grads *g, const srlm_llama *m) {
    return m->be->ops->fill(m->be, &g->flat, 0.0f);
}

void srlm_llama_grads_free(srlm_llama_grads *g, const srlm_llama *m) {
    if (g->flat.data) m->be->ops->free(m->be, &g->flat);
    free(g->layers);
    memset(g, 0, sizeof *g);
}

/* ---- loading ---- */

typedef enum { SLICE_ROWS, SLICE_COLS, SLICE_VOCAB } slice_kind;

/* Read this rank's slice of `name` (full HF shape rows x cols) into view `dst`. */
static srlm_status load_slice(srlm_llama *m, const srlm_checkpoint *ck, const char *name,
                              int64_t rows, int64_t cols, slice_kind kind, int64_t start,
                              srlm_view *dst, float *stage) {
    int64_t n = kind == SLICE_COLS ? dst->cols : dst->rows;
    if (kind == SLICE_COLS) {
        SRLM_CHECK(srlm_ckpt_read_cols(ck, name, rows, cols, start, start + n, stage));
    } else if (kind == SLICE_VOCAB) {
        /* rows past the real vocab are padding: zero */
        int64_t have = rows - start < n ? rows - start : n;
        if (have < 0) have = 0;
        memset(stage, 0, (size_t)(n * cols) * sizeof(float));
        if (have > 0) SRLM_CHECK(srlm_ckpt_read_rows(ck, name, rows, cols, start, start + have, stage));
    } else {
        SRLM_CHECK(srlm_ckpt_read_rows(ck, name, rows, cols, start, start + n, stage));
    }
    return m->be->ops->upload(m->be, dst, stage);
}

/* A decoder layer's tensors: the name after "model.layers.N." and the shape
 * config.json implies (1 column: a 1-D tensor). */
typedef enum { SZ_ONE, SZ_D, SZ_Q, SZ_KV, SZ_FF } layer_size;
static const struct { const char *suffix; layer_size rows, cols; } LAYER_TENSORS[] = {
    {"input_layernorm.weight", SZ_D, SZ_ONE},  {"self_attn.q_proj.weight", SZ_Q, SZ_D},
    {"self_attn.k_proj.weight", SZ_KV, SZ_D},  {"self_attn.v_proj.weight", SZ_KV, SZ_D},
    {"self_attn.o_proj.weight", SZ_D, SZ_Q},   {"post_attention_layernorm.weight", SZ_D, SZ_ONE},
    {"mlp.gate_proj.weight", SZ_FF, SZ_D},     {"mlp.up_proj.weight", SZ_FF, SZ_D},
    {"mlp.down_proj.weight", SZ_D, SZ_FF},
};

static int64_t layer_dim(const srlm_hf_config *c, layer_size s) {
    switch (s) {
    case SZ_D:  return c->hidden_size;
    case SZ_Q:  return (int64_t)c->num_attention_heads * c->head_dim;
    case SZ_KV: return (int64_t)c->num_key_value_heads * c->head_dim;
    case SZ_FF: return c->intermediate_size;
    default:    return 1;
    }
}

/* 1 when `name` is a tensor the model described by c reads. Also tolerated, as
 * transformers does: rotary inv_freq buffers (older checkpoints saved them) and
 * lm_head.weight next to tied embeddings (unused then). */
static int tensor_expected(const srlm_hf_config *c, const char *name) {
    if (!strcmp(name, "model.embed_tokens.weight") || !strcmp(name, "model.norm.weight") ||
        !strcmp(name, "lm_head.weight"))
        return 1;
    size_t n = strlen(name), k = strlen(".rotary_emb.inv_freq");
    if (n > k && !strcmp(name + n - k, ".rotary_emb.inv_freq")) return 1;
    const char *prefix = "model.layers.";
    if (strncmp(name, prefix, strlen(prefix)) != 0) return 0;
    const char *p = name + strlen(prefix);
    char *end;
    long layer = strtol(p, &end, 10);
    if (end == p || *end != '.' || layer < 0 || layer >= c->num_hidden_layers) return 0;
    for (size_t i = 0; i < sizeof LAYER_TENSORS / sizeof LAYER_TENSORS[0]; i++)
        if (!strcmp(end + 1, LAYER_TENSORS[i].suffix)) return 1;
    return 0;
}

/* Every tensor the load reads is there with the shape config.json implies, and
 * the checkpoint holds nothing else, checked before anything is allocated: a
 * config whose sizes lie about the weights is refused naming the tensor, not by
 * allocating what it claims, and a config with fewer layers than the weights
 * does not silently drop the rest. */
srlm_status srlm_llama_check_checkpoint(const srlm_checkpoint *ck) {
    const srlm_hf_config *c = &ck->config;
    const int64_t V = c->vocab_size, D = c->hidden_size;
    char name[256];
    SRLM_CHECK(srlm_ckpt_check_shape(ck, "model.embed_tokens.weight", V, D));
    for (int l = 0; l < c->num_hidden_layers; l++) {
        for (size_t i = 0; i < sizeof LAYER_TENSORS / sizeof LAYER_TENSORS[0]; i++) {
            snprintf(name, sizeof name, "model.layers.%d.%s", l, LAYER_TENSORS[i].suffix);
            SRLM_CHECK(srlm_ckpt_check_shape(ck, name, layer_dim(c, LAYER_TENSORS[i].rows),
                                             layer_dim(c, LAYER_TENSORS[i].cols)));
        }
    }
    SRLM_CHECK(srlm_ckpt_check_shape(ck, "model.norm.weight", D, 1));
    if (!c->tie_word_embeddings) SRLM_CHECK(srlm_ckpt_check_shape(ck, "lm_head.weight", V, D));
    for (int f = 0; f < ck->n_files; f++)
        for (int i = 0; i < ck->files[f].n_tensors; i++)
            if (!tensor_expected(c, ck->files[f].tensors[i].name))
                return SRLM_ERR(SRLM_BAD_INPUT, "%s: tensor '%s' is not part of the model %s/config.json describes "
                                "(num_hidden_layers %d): expected only Llama tensors of layers 0 .. %d; "
                                "the config does not match the weights", ck->files[f].path,
                                ck->files[f].tensors[i].name, ck->dir, c->num_hidden_layers,
                                c->num_hidden_layers - 1);
    return SRLM_OK;
}

/* Read this rank's slices of every weight into the views carved from `flat`
 * (the layout of m->params, any dtype the backend's upload takes). */
static srlm_status load_weights(srlm_llama *m, const srlm_checkpoint *ck, srlm_view flat) {
    srlm_view embed_v, final_norm_v, lm_head_v;
    srlm_view *embed = &embed_v, *final_norm = &final_norm_v, *lm_head = &lm_head_v;
    srlm_llama_layer *layers = calloc((size_t)m->n_layers, sizeof *layers);
    if (!layers) return SRLM_ERR(SRLM_FAILED, "out of memory for the layer table");
    carve_weights(m, flat, embed, layers, final_norm, lm_head);
    /* A host staging buffer as large as the largest shard. */
    const int D = m->dim, hd = m->head_dim, L = m->n_layers;
    const int qd = m->n_heads_local * hd, F = m->ffn_local;
    const int64_t vocab_part = (int64_t)m->vocab_local * D;
    int64_t biggest = vocab_part;
    int64_t cand[] = {(int64_t)qd * D, (int64_t)F * D, (int64_t)D * qd};
    for (int i = 0; i < 3; i++) if (cand[i] > biggest) biggest = cand[i];
    float *stage = malloc((size_t)biggest * sizeof(float));
    if (!stage) return SRLM_ERR(SRLM_FAILED, "out of memory for the load buffer");
    srlm_status st = SRLM_OK;

    const srlm_hf_config *c = &m->cfg;
    const int64_t V = c->vocab_size, NH = c->num_attention_heads, NKV = c->num_key_value_heads;
    const int64_t FF = c->intermediate_size;
    char name[256];
    SRLM_CHECK_GOTO(load_slice(m, ck, "model.embed_tokens.weight", V, D, SLICE_VOCAB,
                               m->vocab_start, embed, stage), st, done);
    for (int l = 0; l < L; l++) {
        srlm_llama_layer *ly = &layers[l];
        const int64_t q0 = (int64_t)m->tp_rank * qd, kv0 = (int64_t)kv_head_start(m) * hd;
        const int64_t f0 = (int64_t)m->tp_rank * F;
        struct { const char *suffix; int64_t rows, cols; slice_kind kind; int64_t start; srlm_view *dst; } t[] = {
            {"input_layernorm.weight",          D,       1, SLICE_ROWS, 0,   &ly->attn_norm},
            {"self_attn.q_proj.weight",         NH * hd, D, SLICE_ROWS, q0,  &ly->wq},
            {"self_attn.k_proj.weight",         NKV * hd, D, SLICE_ROWS, kv0, &ly->wk},
            {"self_attn.v_proj.weight",         NKV * hd, D, SLICE_ROWS, kv0, &ly->wv},
            {"self_attn.o_proj.weight",         D, NH * hd, SLICE_COLS, q0,  &ly->wo},
            {"post_attention_layernorm.weight", D,       1, SLICE_ROWS, 0,   &ly->mlp_norm},
            {"mlp.gate_proj.weight",            FF,      D, SLICE_ROWS, f0,  &ly->w_gate},
            {"mlp.up_proj.weight",              FF,      D, SLICE_ROWS, f0,  &ly->w_up},
            {"mlp.down_proj.weight",            D,      FF, SLICE_COLS, f0,  &ly->w_down},
        };
        for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
            snprintf(name, sizeof name, "model.layers.%d.%s", l, t[i].suffix);
            srlm_watchdog_progress("loading the model");
            /* norms are (1, D) views of a 1-D tensor of D elements */
            srlm_view dst = *t[i].dst;
            if (t[i].cols == 1) { dst.rows = D; dst.cols = 1; dst.stride = 1; }
            SRLM_CHECK_GOTO(load_slice(m, ck, name, t[i].rows, t[i].cols, t[i].kind, t[i].start,
                                       &dst, stage), st, done);
        }
    }
    srlm_view fn = *final_norm;
    fn.rows = D; fn.cols = 1; fn.stride = 1;
    SRLM_CHECK_GOTO(load_slice(m, ck, "model.norm.weight", D, 1, SLICE_ROWS, 0, &fn, stage), st, done);
    if (!m->tied)
        SRLM_CHECK_GOTO(load_slice(m, ck, "lm_head.weight", V, D, SLICE_VOCAB, m->vocab_start,
                                   lm_head, stage), st, done);
done:
    free(stage);
    free(layers);
    return st;
}

static srlm_status load_model(srlm_llama *m, const srlm_checkpoint *ck, srlm_backend *be, srlm_comm *tp,
                              int training) {
    memset(m, 0, sizeof *m);
    m->cfg = ck->config;
    m->be = be;
    m->tp = tp;
    SRLM_CHECK(srlm_llama_check_checkpoint(ck));
    SRLM_CHECK(plan_shapes(m, srlm_comm_rank(tp), srlm_comm_size(tp)));
    const int D = m->dim, hd = m->head_dim, L = m->n_layers;
    const int qd = m->n_heads_local * hd, kvd = m->n_kv_local * hd, F = m->ffn_local;
    /* tp > n_kv_heads: ranks whose query heads read the same KV head form a group */
    if (m->cfg.num_key_value_heads < m->tp_size)
        SRLM_CHECK(srlm_comm_split(tp, kv_head_start(m), m->tp_rank, &m->kv_group));
    if (be->ops->device_comm && m->tp_size > 1) {
        srlm_status st = be->ops->device_comm(be, tp, &m->tp_dev);
        /* the KV replicas' group sums weight gradients only: no communicator to infer */
        if (st == SRLM_OK && training && srlm_comm_size(m->kv_group) > 1)
            st = be->ops->device_comm(be, m->kv_group, &m->kv_dev);
        if (st != SRLM_OK) {
            srlm_llama_free(m);
            return st;
        }
    }
    /* As transformers does: when tied, the LM head IS the embedding, whatever the file holds. */
    m->tied = m->cfg.tie_word_embeddings;

    /* One allocation for every weight, carved in a fixed order. */
    int64_t per_layer = 2 * (int64_t)D + (int64_t)qd * D + 2 * (int64_t)kvd * D +
                        (int64_t)D * qd + 3 * (int64_t)F * D;
    int64_t vocab_part = (int64_t)m->vocab_local * D;
    int64_t total = vocab_part * (m->tied ? 1 : 2) + per_layer * L + D;
    m->n_params_local = total;
    srlm_status st;
    m->layers = calloc((size_t)L, sizeof *m->layers);
    if (!m->layers) {
        st = SRLM_ERR(SRLM_FAILED, "out of memory for the layer table");
        goto fail; /* the device communicators above are freed there */
    }
    SRLM_CHECK_GOTO(be->ops->alloc(be, &m->params, be->dtype, 1, total, "model weights"), st, fail);
    carve_weights(m, m->params, &m->embed, m->layers, &m->final_norm, &m->lm_head);
    if (training && be->dtype != SRLM_F32) {
        SRLM_CHECK_GOTO(be->ops->alloc(be, &m->master, SRLM_F32, 1, total, "master weights (fp32)"), st, fail);
        SRLM_CHECK_GOTO(load_weights(m, ck, m->master), st, fail);
        SRLM_CHECK_GOTO(srlm_llama_refresh_params(m), st, fail);
    } else {
        SRLM_CHECK_GOTO(load_weights(m, ck, m->params), st, fail);
    }
    return SRLM_OK;
fail:
    srlm_llama_free(m);
    return st;
}

srlm_status srlm_llama_load(srlm_llama *m, const srlm_checkpoint *ck, srlm_backend *be, srlm_comm *tp) {
    return load_model(m, ck, be, tp, 0);
}

srlm_status srlm_llama_load_for_training(srlm_llama *m, const srlm_checkpoint *ck, srlm_backend *be,
                                         srlm_comm *tp) {
    return load_model(m, ck, be, tp, 1);
}

srlm_status srlm_llama_refresh_params(srlm_llama *m) {
    if (!m->master.data) return SRLM_OK;
    return m->be->ops->copy(m->be, &m->params, &m->master);
}

void srlm_llama_free_device_comms(srlm_llama *m) {
    srlm_comm_free(m->kv_dev);
    srlm_comm_free(m->tp_dev);
    m->kv_dev = m->tp_dev = NULL;
}

void srlm_llama_free(srlm_llama *m) {
    srlm_llama_free_device_comms(m);
    srlm_comm_free(m->kv_group);
    m->kv_group = NULL;
    if (m->params.data) m->be->ops->free(m->be, &m->params);
    if (m->master.data) m->be->ops->free(m->be, &m->master);
    free(m->layers);
    m->layers = NULL;
}

/* ---- KV cache and activations ---- */

srlm_status srlm_kv_cache_new(srlm_kv_cache *kv, const srlm_llama *m, int slots, int max_seq) {
    memset(kv, 0, sizeof *kv);
    int64_t kvd = (int64_t)m->n_kv_local * m->head_dim, rows = (int64_t)slots * max_seq;
    kv->slots = slots;
    kv->max_seq = max_seq;
    kv->k = calloc((size_t)m->n_layers * 2, sizeof(srlm_view));
    if (!kv->k) return SRLM_ERR(SRLM_FAILED, "out of memory for the KV cache table");
    kv->v = kv->k + m->n_layers;
    srlm_status st = m->be->ops->alloc(m->be, &kv->mem, m->be->dtype, 1,
                                       2 * (int64_t)m->n_layers * rows * kvd, "KV cache");
    if (st != SRLM_OK) { free(kv->k); kv->k = NULL; return st; }
    for (int l = 0; l < m->n_layers; l++) {
        kv->k[l] = srlm_view_carve(kv->mem, (2 * (int64_t)l) * rows * kvd, rows, kvd);
        kv->v[l] = srlm_view_carve(kv->mem, (2 * (int64_t)l + 1) * rows * kvd, rows, kvd);
    }
    return SRLM_OK;
}

void srlm_kv_cache_free(srlm_kv_cache *kv, srlm_backend *be) {
    if (kv->mem.data) be->ops->free(be, &kv->mem);
    free(kv->k);
    kv->k = kv->v = NULL;
}

srlm_status srlm_llama_qkv_weight(const srlm_llama_layer *ly, srlm_view *w) {
    srlm_view qk;
    if (srlm_view_stack(&ly->wq, &ly->wk, &qk) && srlm_view_stack(&qk, &ly->wv, w)) return SRLM_OK;
    return SRLM_ERR(SRLM_FAILED, "model layout: a layer's q, k and v weights are not carved one after the other");
}

srlm_status srlm_llama_gate_up_weight(const srlm_llama_layer *ly, srlm_view *w) {
    if (srlm_view_stack(&ly->w_gate, &ly->w_up, w)) return SRLM_OK;
    return SRLM_ERR(SRLM_FAILED, "model layout: a layer's gate and up weights are not carved one after the other");
}

srlm_status srlm_llama_acts_new(srlm_llama_acts *a, const srlm_llama *m, int max_tokens,
                                int max_logit_rows) {
    memset(a, 0, sizeof *a);
    const int64_t N = max_tokens, D = m->dim, hd = m->head_dim;
    const int64_t qd = (int64_t)m->n_heads_local * hd, kvd = (int64_t)m->n_kv_local * hd;
    const int64_t F = m->ffn_local, V = m->vocab_local;
    a->max_tokens = max_tokens;
    a->max_logit_rows = max_logit_rows;
    int64_t total = N * (3 * D + 2 * qd + 2 * kvd + 2 * F) + (int64_t)max_logit_rows * V;
    SRLM_CHECK(m->be->ops->alloc(m->be, &a->mem, m->be->dtype, 1, total, "activations"));
    int64_t off = 0;
#define CARVE(field, r, c) (a->field = srlm_view_carve(a->mem, off, (r), (c)), off += (int64_t)(r) * (c))
    CARVE(x, N, D);
    CARVE(xn, N, D);
    CARVE(proj, N, D);
    CARVE(qkv, N, qd + 2 * kvd);
    CARVE(att, N, qd);
    CARVE(gu, N, 2 * F);
    CARVE(logits, max_logit_rows, V);
#undef CARVE
    a->q = srlm_view_cols(a->qkv, 0, qd);
    a->k = srlm_view_cols(a->qkv, qd, kvd);
    a->v = srlm_view_cols(a->qkv, qd + kvd, kvd);
    a->gate = srlm_view_cols(a->gu, 0, F);
    a->up = srlm_view_cols(a->gu, F, F);
    a->pos = malloc((size_t)N * 4 * sizeof(int)); /* pos, rows, and a packed prefill's two row maps */
    if (!a->pos) {
        m->be->ops->free(m->be, &a->mem);
        return SRLM_ERR(SRLM_FAILED, "out of memory for position scratch");
    }
    a->rows = a->pos + N;
    const char *rec = getenv("SRLM_RECORD_STEPS");
    a->step_off = rec && !strcmp(rec, "0");
    return SRLM_OK;
}

srlm_status srlm_llama_acts_reserve_padded(srlm_llama_acts *a, const srlm_llama *m, int rows) {
    const int64_t hd = m->head_dim, qd = (int64_t)m->n_heads_local * hd, kvd = (int64_t)m->n_kv_local * hd;
    if (a->pad_mem.data) m->be->ops->free(m->be, &a->pad_mem);
    a->qkv_pad = a->att_pad = (srlm_view){0};
    SRLM_CHECK(m->be->ops->alloc(m->be, &a->pad_mem, m->be->dtype, 1, (int64_t)rows * (2 * qd + 2 * kvd),
                                 "padded attention scratch"));
    a->qkv_pad = srlm_view_carve(a->pad_mem, 0, rows, qd + 2 * kvd);
    a->att_pad = srlm_view_carve(a->pad_mem, (int64_t)rows * (qd + 2 * kvd), rows, qd);
    return SRLM_OK;
}

void srlm_llama_acts_free(srlm_llama_acts *a, srlm_backend *be) {
    if (a->mem.data) be->ops->free(be, &a->mem);
    if (a->pad_mem.data) be->ops->free(be, &a->pad_mem);
    free(a->pos);
    a->pos = a->rows = NULL;
}

/* ---- forward ---- */

srlm_status srlm_llama_allreduce_view(srlm_llama *m, srlm_comm *comm, srlm_view *v) {
    if (srlm_comm_size(comm) <= 1) return SRLM_OK;
    if (v->stride != v->cols) return SRLM_ERR(SRLM_FAILED, "allreduce of a view: needs a contiguous view");
    const size_t n = (size_t)(v->rows * v->cols);
    if (m->be->ops->host_memory && v->dtype == SRLM_F32)
        return srlm_comm_allreduce_f32(comm, v->data, n, SRLM_REDUCE_SUM);
    srlm_comm *dev = comm == m->tp ? m->tp_dev : comm == m->kv_group ? m->kv_dev : NULL;
    if (dev) /* on the backend's stream */
        return srlm_comm_allreduce(dev, v->data, n, v->dtype == SRLM_BF16 ? SRLM_COMM_BF16 : SRLM_COMM_F32,
                                   SRLM_REDUCE_SUM);
    /* no device communicator, or BF16 on the host: summed in fp32 and rounded
     * once (MPI has no bf16 sum of its own) */
    float *host = malloc(sizeof(float) * n);
    if (!host) return SRLM_ERR(SRLM_FAILED, "out of memory staging an allreduce of %zu floats", n);
    srlm_status st = m->be->ops->download(m->be, host, v);
    if (st == SRLM_OK) st = srlm_comm_allreduce_f32(comm, host, n, SRLM_REDUCE_SUM);
    if (st == SRLM_OK) st = m->be->ops->upload(m->be, v, host);
    free(host);
    return st;
}

/* A packed prefill's row maps (srlm_llama_prefill): padded row p of the
 * attention scratch holds packed row scatter[p]; packed row i is padded row
 * gather[i]. */
typedef struct {
    const int *scatter, *gather;
} packing;

static srlm_status forward_ops(srlm_llama *m, srlm_kv_cache *kv, srlm_llama_acts *a, const srlm_batch *bt, int N,
                               const int *pos, const int *rows, const packing *pk);

/* A recording that could not be made: the step runs op by op, and after
 * three such failures every later one does (a backend that cannot record
 * these ops would otherwise pay for a failed recording at every new key). */
static void step_failed(srlm_llama_acts *a) {
    if (++a->step_failures == 1 || a->step_failures == 3)
        SRLM_WARN("decode step not recorded (%s)%s", srlm_last_error(),
                  a->step_failures == 3 ? "; decode steps run op by op from now on" : "; it runs op by op");
    if (a->step_failures >= 3) a->step_off = 1;
    srlm_clear_error();
}

/* FNV-1a over the things a recorded decode step depends on besides the
 * contents of its host arrays. */
static uint64_t step_key(const srlm_llama *m, const srlm_kv_cache *kv, const srlm_llama_acts *a, int B, int bound) {
    const uintptr_t parts[] = {(uintptr_t)m, (uintptr_t)m->params.data, (uintptr_t)kv->mem.data,
                               (uintptr_t)kv->max_seq, (uintptr_t)a->mem.data, (uintptr_t)B, (uintptr_t)bound};
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        for (int k = 0; k < (int)sizeof(uintptr_t); k++) h = (h ^ ((parts[i] >> (8 * k)) & 0xff)) * 1099511628211ull;
    return h;
}

/* A decode step through the backend's recorded steps (backend.h): the batch's
 * host arrays are copied into the step area, and the ops recorded for this key
 * replay on them. A key seen for the first time runs op by op (its kernels and
 * library calls set up outside a recording), the second time it is recorded.
 * *done 0: the caller runs the step op by op. */
static srlm_status forward_step(srlm_llama *m, srlm_kv_cache *kv, srlm_llama_acts *a, const srlm_batch *bt,
                                int *done) {
    const srlm_backend_ops *op = m->be->ops;
    srlm_backend *be = m->be;
    const int B = bt->B;
    *done = 0;
    int max_len = 0;
    for (int b = 0; b < B; b++)
        if (bt->n_past[b] + bt->n_new[b] > max_len) max_len = bt->n_past[b] + bt->n_new[b];
    const uint64_t key = step_key(m, kv, a, B, srlm_decode_len_bound(max_len, kv->max_seq));
    /* six arrays of B ints, each at a multiple of 256 bytes (a GPU kernel may
     * read them with vector loads, as it reads the arrays it is handed) */
    const size_t span = (sizeof(int) * (size_t)B + 255) / 256 * 256 / sizeof(int);
    int *in = op->step_inputs(be, sizeof(int) * 6 * span);
    if (!in) {
        step_failed(a);
        return SRLM_OK;
    }
    int *ids = in, *slot = in + span, *n_past = in + 2 * span, *n_new = in + 3 * span, *pos = in + 4 * span,
        *rows = in + 5 * span;
    memcpy(ids, bt->ids, sizeof(int) * (size_t)B);
    memcpy(slot, bt->slot, sizeof(int) * (size_t)B);
    memcpy(n_past, bt->n_past, sizeof(int) * (size_t)B);
    memcpy(n_new, bt->n_new, sizeof(int) * (size_t)B);
    memcpy(pos, a->pos, sizeof(int) * (size_t)B);
    memcpy(rows, a->rows, sizeof(int) * (size_t)B);
    int ran;
    SRLM_CHECK(op->step_replay(be, key, &ran));
    if (!ran && a->step_seen != key) {
        a->step_seen = key;
        return SRLM_OK;
    }
    if (!ran) {
        const srlm_batch sb = {B, 1, ids, slot, n_past, n_new, 1};
        srlm_status st = op->step_begin(be, key);
        if (st == SRLM_OK) {
            st = forward_ops(m, kv, a, &sb, B, pos, rows, NULL);
            srlm_status end = op->step_end(be, st == SRLM_OK);
            if (st == SRLM_OK) st = end;
        }
        if (st != SRLM_OK) {
            step_failed(a);
            return SRLM_OK;
        }
        a->steps_recorded++;
        SRLM_CHECK(op->step_replay(be, key, &ran));
        if (!ran) {
            SRLM_ERR(SRLM_FAILED, "a step recorded just now did not replay");
            step_failed(a);
            return SRLM_OK;
        }
    }
    a->steps_replayed++;
    *done = 1;
    return SRLM_OK;
}

/* Each sequence of a batch fits the cache (and the sliding window). */
static srlm_status check_seqs(const srlm_llama *m, const srlm_kv_cache *kv, const srlm_batch *bt) {
    for (int b = 0; b < bt->B; b++) {
        if (bt->slot[b] < 0 || bt->slot[b] >= kv->slots || bt->n_new[b] < 0 || bt->n_new[b] > bt->T ||
            bt->n_past[b] < 0 || bt->n_past[b] + bt->n_new[b] > kv->max_seq)
            return SRLM_ERR(SRLM_BAD_INPUT, "forward: sequence %d (slot %d, %d cached + %d new) does "
                            "not fit the KV cache (%d slots x %d positions)", b, bt->slot[b],
                            bt->n_past[b], bt->n_new[b], kv->slots, kv->max_seq);
        if (bt->last_only && bt->n_new[b] < 1)
            return SRLM_ERR(SRLM_FAILED, "forward: sequence %d has no new token", b);
        if (m->cfg.sliding_window > 0 && bt->n_past[b] + bt->n_new[b] > m->cfg.sliding_window) {
            char what[48];
            snprintf(what, sizeof what, "forward: sequence %d", b);
            return srlm_hf_check_seq_len(&m->cfg, bt->n_past[b] + bt->n_new[b], 0, what);
        }
    }
    return SRLM_OK;
}

static srlm_status check_id(const srlm_llama *m, int id, int t, int b) {
    if (id >= 0 && id < m->cfg.vocab_size) return SRLM_OK;
    return SRLM_ERR(SRLM_BAD_INPUT, "token id %d at position %d of sequence %d is outside the vocabulary [0, %d)",
                    id, t, b, m->cfg.vocab_size);
}

srlm_status srlm_llama_forward(srlm_llama *m, srlm_kv_cache *kv, srlm_llama_acts *a,
                               const srlm_batch *bt) {
    const int N = bt->B * bt->T;
    const int n_logit_rows = bt->last_only ? bt->B : N;
    if (N > a->max_tokens || n_logit_rows > a->max_logit_rows)
        return SRLM_ERR(SRLM_FAILED, "forward: batch of %d rows (%d logit rows) exceeds the "
                        "activation buffers (%d, %d)", N, n_logit_rows, a->max_tokens, a->max_logit_rows);
    SRLM_CHECK(check_seqs(m, kv, bt));
    for (int b = 0; b < bt->B; b++)
        for (int t = 0; t < bt->T; t++) {
            a->pos[b * bt->T + t] = bt->n_past[b] + t;
            if (t < bt->n_new[b]) SRLM_CHECK(check_id(m, bt->ids[b * bt->T + t], t, b));
        }
    if (bt->last_only)
        for (int b = 0; b < bt->B; b++) a->rows[b] = b * bt->T + bt->n_new[b] - 1;
    if (bt->T == 1 && bt->last_only && m->tp_size == 1 && m->be->ops->step_replay && !a->step_off) {
        int done;
        SRLM_CHECK(forward_step(m, kv, a, bt, &done));
        if (done) return SRLM_OK;
    }
    return forward_ops(m, kv, a, bt, N, a->pos, a->rows, NULL);
}

srlm_status srlm_llama_prefill(srlm_llama *m, srlm_kv_cache *kv, srlm_llama_acts *a, const srlm_batch *bt) {
    const int P = bt->B * bt->T;
    if (!bt->last_only) return SRLM_ERR(SRLM_FAILED, "prefill: gives the last rows' logits only (last_only)");
    if (!a->qkv_pad.data || P > a->qkv_pad.rows || P > a->max_tokens)
        return SRLM_ERR(SRLM_FAILED, "prefill: %d x %d padded rows, more than the activations hold (%d rows, %lld "
                        "of padded scratch: srlm_llama_acts_reserve_padded)", bt->B, bt->T, a->max_tokens,
                        (long long)a->qkv_pad.rows);
    if (bt->B > a->max_logit_rows)
        return SRLM_ERR(SRLM_FAILED, "prefill: %d sequences, more than the %d logit rows of the activations",
                        bt->B, a->max_logit_rows);
    SRLM_CHECK(check_seqs(m, kv, bt));
    int N = 0;
    for (int b = 0; b < bt->B; b++) N += bt->n_new[b];
    if (N > a->max_tokens)
        return SRLM_ERR(SRLM_FAILED, "prefill: %d rows exceed the activation buffers (%d)", N, a->max_tokens);
    int *scatter = a->rows + a->max_tokens, *gather = scatter + a->max_tokens;
    for (int b = 0, off = 0; b < bt->B; off += bt->n_new[b], b++) {
        for (int t = 0; t < bt->n_new[b]; t++) {
            SRLM_CHECK(check_id(m, bt->ids[off + t], t, b));
            a->pos[off + t] = bt->n_past[b] + t;
            gather[off + t] = b * bt->T + t;
        }
        for (int t = 0; t < bt->T; t++) /* padding rows repeat the last: never read */
            scatter[b * bt->T + t] = off + (t < bt->n_new[b] ? t : bt->n_new[b] - 1);
        a->rows[b] = off + bt->n_new[b] - 1;
    }
    const packing pk = {scatter, gather};
    return forward_ops(m, kv, a, bt, N, a->pos, a->rows, &pk);
}

/* The forward's ops, the batch checked: pos holds each row's position and,
 * for last_only, rows each sequence's last real row (host arrays). */
static srlm_status forward_ops(srlm_llama *m, srlm_kv_cache *kv, srlm_llama_acts *a, const srlm_batch *bt, int N,
                               const int *pos, const int *rows, const packing *pk) {
    const srlm_backend_ops *op = m->be->ops;
    srlm_backend *be = m->be;
    const int n_logit_rows = bt->last_only ? bt->B : N;
    const srlm_attn_shape as = {bt->B, bt->T, m->n_heads_local, m->n_kv_local, m->head_dim,
                                kv->max_seq, bt->slot, bt->n_past, bt->n_new, 0, NULL};
    const float eps = (float)m->cfg.rms_norm_eps, theta = (float)m->cfg.rope_theta;

    srlm_view x = srlm_view_rows(a->x, 0, N), xn = srlm_view_rows(a->xn, 0, N);
    srlm_view q = srlm_view_rows(a->q, 0, N), k = srlm_view_rows(a->k, 0, N);
    srlm_view v = srlm_view_rows(a->v, 0, N), att = srlm_view_rows(a->att, 0, N);
    srlm_view qkv = srlm_view_rows(a->qkv, 0, N);
    srlm_view proj = srlm_view_rows(a->proj, 0, N), gate = srlm_view_rows(a->gate, 0, N);
    srlm_view up = srlm_view_rows(a->up, 0, N), gu = srlm_view_rows(a->gu, 0, N);
    const int P = bt->B * bt->T; /* padded rows, where pk */
    srlm_view qkv_pad = {0}, q_pad = {0}, k_pad = {0}, v_pad = {0}, att_pad = {0};
    if (pk) {
        qkv_pad = srlm_view_rows(a->qkv_pad, 0, P);
        q_pad = srlm_view_cols(qkv_pad, 0, q.cols);
        k_pad = srlm_view_cols(qkv_pad, q.cols, k.cols);
        v_pad = srlm_view_cols(qkv_pad, q.cols + k.cols, v.cols);
        att_pad = srlm_view_rows(a->att_pad, 0, P);
    }

    SRLM_CHECK(op->embedding(be, &x, &m->embed, bt->ids, N, m->vocab_start));
    SRLM_CHECK(srlm_llama_allreduce_view(m, m->tp, &x));
    /* each residual add and the norm after it are one op (add_rmsnorm): xn
     * holds the attention norm of x when a layer starts */
    if (m->n_layers > 0) SRLM_CHECK(op->rmsnorm(be, &xn, &x, &m->layers[0].attn_norm, eps));
    for (int l = 0; l < m->n_layers; l++) {
        const srlm_llama_layer *ly = &m->layers[l];
        /* attention block */
        srlm_view w_qkv, w_gu;
        SRLM_CHECK(srlm_llama_qkv_weight(ly, &w_qkv));
        SRLM_CHECK(srlm_llama_gate_up_weight(ly, &w_gu));
        SRLM_CHECK(op->matmul(be, &qkv, &xn, &w_qkv, 0));
        /* q and k are adjacent columns of qkv: one rope call over both */
        srlm_view qk = srlm_view_cols(qkv, 0, q.cols + k.cols);
        SRLM_CHECK(op->rope(be, &qk, pos, m->n_heads_local + m->n_kv_local, m->head_dim, theta));
        if (pk) { /* the cache and attention see the padded layout */
            SRLM_CHECK(op->copy_rows(be, &qkv_pad, &qkv, pk->scatter, P));
            SRLM_CHECK(op->kv_store(be, &kv->k[l], &k_pad, &as));
            SRLM_CHECK(op->kv_store(be, &kv->v[l], &v_pad, &as));
            SRLM_CHECK(op->attention(be, &att_pad, &q_pad, &kv->k[l], &kv->v[l], &as, NULL));
            SRLM_CHECK(op->copy_rows(be, &att, &att_pad, pk->gather, N));
        } else {
            SRLM_CHECK(op->kv_store(be, &kv->k[l], &k, &as));
            SRLM_CHECK(op->kv_store(be, &kv->v[l], &v, &as));
            SRLM_CHECK(op->attention(be, &att, &q, &kv->k[l], &kv->v[l], &as, NULL));
        }
        SRLM_CHECK(op->matmul(be, &proj, &att, &ly->wo, 0));
        SRLM_CHECK(srlm_llama_allreduce_view(m, m->tp, &proj));
        /* MLP block */
        SRLM_CHECK(op->add_rmsnorm(be, &x, &xn, &proj, &ly->mlp_norm, eps));
        SRLM_CHECK(op->matmul(be, &gu, &xn, &w_gu, 0));
        SRLM_CHECK(op->swiglu(be, &gate, &gate, &up));
        SRLM_CHECK(op->matmul(be, &proj, &gate, &ly->w_down, 0));
        SRLM_CHECK(srlm_llama_allreduce_view(m, m->tp, &proj));
        if (l + 1 < m->n_layers) SRLM_CHECK(op->add_rmsnorm(be, &x, &xn, &proj, &m->layers[l + 1].attn_norm, eps));
        else SRLM_CHECK(op->add(be, &x, &proj));
    }
    srlm_view head_in = xn;
    if (bt->last_only) {
        head_in = srlm_view_rows(a->proj, 0, bt->B);
        SRLM_CHECK(op->copy_rows(be, &head_in, &x, rows, bt->B));
        SRLM_CHECK(op->rmsnorm(be, &head_in, &head_in, &m->final_norm, eps));
    } else {
        SRLM_CHECK(op->rmsnorm(be, &xn, &x, &m->final_norm, eps));
    }
    srlm_view logits = srlm_view_rows(a->logits, 0, n_logit_rows);
    SRLM_CHECK(op->matmul(be, &logits, &head_in, &m->lm_head, 0));
    int64_t real = (int64_t)m->cfg.vocab_size - m->vocab_start; /* real columns in this shard */
    if (real < m->vocab_local)
        SRLM_CHECK(op->fill_cols(be, &logits, real < 0 ? 0 : real, -INFINITY));
    return SRLM_OK;
}

srlm_status srlm_llama_logprobs_view(srlm_llama *m, const srlm_view *logits, const int *targets,
                                     int n_rows, float *logp, float *mx_out, float *se_out) {
    float *buf = malloc((size_t)n_rows * 4 * sizeof(float) + 1);
    if (!buf) return SRLM_ERR(SRLM_FAILED, "out of memory for log-prob scratch");
    float *mx = buf, *se = buf + n_rows, *tl = buf + 2 * n_rows, *gmx = buf + 3 * n_rows;
    srlm_view rows = srlm_view_rows(*logits, 0, n_rows);
    srlm_status st;
    /* one pass over this shard's logits, then the shards' (max, sum) merged:
     * each sum moves to the global max before the sums are added */
    SRLM_CHECK_GOTO(m->be->ops->row_logsumexp_target(m->be, &rows, targets, m->vocab_start, mx, se, tl), st, done);
    if (srlm_comm_size(m->tp) > 1) {
        memcpy(gmx, mx, sizeof(float) * (size_t)n_rows);
        SRLM_CHECK_GOTO(srlm_comm_allreduce_f32(m->tp, gmx, (size_t)n_rows, SRLM_REDUCE_MAX), st, done);
        for (int i = 0; i < n_rows; i++) {
            /* a shard of padding only has se 0 (or NaN, kept: a NaN logit must show) */
            if (mx[i] != -INFINITY) se[i] *= expf(mx[i] - gmx[i]);
            mx[i] = gmx[i];
        }
        /* se and tl are reduced in one call: they are adjacent */
        SRLM_CHECK_GOTO(srlm_comm_allreduce_f32(m->tp, se, 2 * (size_t)n_rows, SRLM_REDUCE_SUM), st, done);
    }
    for (int i = 0; i < n_rows; i++) logp[i] = tl[i] - mx[i] - logf(se[i]);
    if (mx_out) memcpy(mx_out, mx, sizeof(float) * (size_t)n_rows);
    if (se_out) memcpy(se_out, se, sizeof(float) * (size_t)n_rows);
done:
    free(buf);
    return st;
}

srlm_status srlm_llama_logprobs(srlm_llama *m, srlm_llama_acts *a, const int *targets,
                                int n_rows, float *logp) {
    return srlm_llama_logprobs_view(m, &a->logits, targets, n_rows, logp, NULL, NULL);
}

srlm_status srlm_llama_argmax(srlm_llama *m, srlm_llama_acts *a, int n_rows, int *next) {
    float *buf = malloc((size_t)n_rows * 2 * sizeof(float));
    if (!buf) return SRLM_ERR(SRLM_FAILED, "out of memory for argmax scratch");
    float *val = buf, *cand = buf + n_rows;
    srlm_view logits = srlm_view_rows(a->logits, 0, n_rows);
    srlm_status st;
    SRLM_CHECK_GOTO(m->be->ops->row_argmax(m->be, &logits, next, val), st, done);
    if (srlm_comm_size(m->tp) > 1) {
        /* the best value wins; among equal values the lowest global id (as -id under MAX) */
        memcpy(cand, val, (size_t)n_rows * sizeof(float));
        SRLM_CHECK_GOTO(srlm_comm_allreduce_f32(m->tp, cand, (size_t)n_rows, SRLM_REDUCE_MAX), st, done);
        for (int i = 0; i < n_rows; i++)
            val[i] = val[i] == cand[i] ? -(float)(next[i] + m->vocab_start) : -INFINITY;
        SRLM_CHECK_GOTO(srlm_comm_allreduce_f32(m->tp, val, (size_t)n_rows, SRLM_REDUCE_MAX), st, done);
        for (int i = 0; i < n_rows; i++) next[i] = (int)-val[i];
    } else {
        for (int i = 0; i < n_rows; i++) next[i] += m->vocab_start;
    }
    st = SRLM_OK;
done:
    free(buf);
    return st;
}
