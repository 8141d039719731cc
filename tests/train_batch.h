/* The training fixture batch (tests/fixtures/train/<case>/batch.json, written
 * by make_train_fixtures.py): right-padded ids, lengths and prompt lengths;
 * a fixture model loaded; the gradient view of an HF parameter name; one SFT
 * step. Shared by the gradient tests. */
#ifndef SRLM_TEST_TRAIN_BATCH_H
#define SRLM_TEST_TRAIN_BATCH_H

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/llama_train.h"
#include "test.h"

typedef struct {
    int B, T, *ids, *len, *plen;
} batch_data;

static inline int load_train_batch(const char *path, batch_data *bd) {
    char *text = test_read_file(path, NULL);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    free(text);
    if (!j) return 0;
    const cJSON *ids = cJSON_GetObjectItem(j, "ids");
    bd->B = cJSON_GetArraySize(ids);
    bd->T = cJSON_GetArraySize(cJSON_GetArrayItem(ids, 0));
    bd->ids = malloc(sizeof(int) * (size_t)bd->B * bd->T);
    bd->len = malloc(sizeof(int) * (size_t)bd->B);
    bd->plen = malloc(sizeof(int) * (size_t)bd->B);
    for (int b = 0; b < bd->B; b++) {
        for (int t = 0; t < bd->T; t++)
            bd->ids[b * bd->T + t] = cJSON_GetArrayItem(cJSON_GetArrayItem(ids, b), t)->valueint;
        bd->len[b] = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "lengths"), b)->valueint;
        bd->plen[b] = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "prompt_lengths"), b)->valueint;
    }
    cJSON_Delete(j);
    return 1;
}

/* Open fixture model `name` (tests/fixtures/llama/<name>) and load it on be;
 * 0 (with the failure counted) when either fails. */
static inline int load_fixture_model(const char *name, srlm_backend *be, srlm_checkpoint *ck, srlm_llama *m) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/llama/%s", test_env("SRLM_FIXTURES", "tests/fixtures"), name);
    int before = test_failures;
    CHECK_OK(srlm_ckpt_open(ck, dir));
    if (test_failures != before) return 0;
    CHECK_OK(srlm_llama_load(m, ck, be, NULL));
    if (test_failures != before) { srlm_ckpt_close(ck); return 0; }
    return 1;
}

static inline void free_train_batch(batch_data *bd) {
    free(bd->ids);
    free(bd->len);
    free(bd->plen);
}

/* Our gradient view for an HF parameter name. */
static inline const srlm_view *grad_view(const srlm_llama_grads *g, const char *name) {
    int l;
    char rest[200];
    if (!strcmp(name, "model.embed_tokens.weight")) return &g->embed;
    if (!strcmp(name, "model.norm.weight")) return &g->final_norm;
    if (!strcmp(name, "lm_head.weight")) return &g->lm_head;
    if (sscanf(name, "model.layers.%d.%199s", &l, rest) != 2) return NULL;
    const srlm_llama_layer *ly = &g->layers[l];
    struct { const char *n; const srlm_view *v; } map[] = {
        {"input_layernorm.weight", &ly->attn_norm}, {"self_attn.q_proj.weight", &ly->wq},
        {"self_attn.k_proj.weight", &ly->wk}, {"self_attn.v_proj.weight", &ly->wv},
        {"self_attn.o_proj.weight", &ly->wo}, {"post_attention_layernorm.weight", &ly->mlp_norm},
        {"mlp.gate_proj.weight", &ly->w_gate}, {"mlp.up_proj.weight", &ly->w_up},
        {"mlp.down_proj.weight", &ly->w_down},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(rest, map[i].n)) return map[i].v;
    return NULL;
}

/* One SFT forward and backward on the batch: loss = -(sum of response-token
 * log-probs) / (number of them), as transformers computes it; g is zeroed first. */
static inline double train_sft_step(srlm_llama *m, srlm_train_acts *a, const srlm_train_batch *tb,
                       const batch_data *bd, srlm_llama_grads *g) {
    int N = bd->B * bd->T, count = 0;
    float *logp = calloc((size_t)N, sizeof(float)), *dlogp = calloc((size_t)N, sizeof(float));
    CHECK_OK(srlm_llama_train_forward(m, a, tb, logp));
    for (int b = 0; b < bd->B; b++)
        for (int t = bd->plen[b] - 1; t < bd->len[b] - 1; t++) count++;
    double loss = 0;
    for (int b = 0; b < bd->B; b++)
        for (int t = bd->plen[b] - 1; t < bd->len[b] - 1; t++) {
            loss -= logp[b * bd->T + t];
            dlogp[b * bd->T + t] = -1.0f / (float)count;
        }
    CHECK_OK(srlm_llama_train_backward(m, a, tb, dlogp, g, 0)); /* writes g, whatever it held */
    free(logp);
    free(dlogp);
    return loss / count;
}

#endif
