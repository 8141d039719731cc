#include "model/llama_init.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/rng.h"
#include "io/safetensors.h"

static srlm_status add_tensor(srlm_st_writer *w, const char *name, int64_t rows, int64_t cols,
                              uint64_t key, double std, float *buf) {
    int64_t n = rows * cols;
    for (int64_t i = 0; i < n; i++)
        buf[i] = std > 0 ? (float)(std * srlm_rng_normal(key, (uint64_t)i)) : 1.0f;
    int64_t shape[2] = {rows, cols};
    return srlm_st_writer_add(w, name, SRLM_F32, cols > 1 ? 2 : 1, cols > 1 ? shape : &rows, buf);
}

srlm_status srlm_llama_write_random(const char *dir, const srlm_hf_config *cfg, uint64_t seed,
                                    double init_std) {
    const int64_t D = cfg->hidden_size, F = cfg->intermediate_size, V = cfg->vocab_size;
    const int64_t qd = (int64_t)cfg->num_attention_heads * cfg->head_dim;
    const int64_t kvd = (int64_t)cfg->num_key_value_heads * cfg->head_dim;
    int64_t biggest = V * D;
    if (F * D > biggest) biggest = F * D;
    if (qd * D > biggest) biggest = qd * D;
    float *buf = malloc(sizeof(float) * (size_t)biggest);
    if (!buf) return SRLM_ERR(SRLM_FAILED, "out of memory initialising a model");
    srlm_st_writer *w = NULL;
    srlm_status st;
    SRLM_CHECK_GOTO(srlm_st_writer_new(&w), st, done);
    uint64_t t = 0; /* tensor index: each tensor its own RNG key */
    SRLM_CHECK_GOTO(add_tensor(w, "model.embed_tokens.weight", V, D, srlm_rng_key(seed, t++), init_std, buf), st, done);
    for (int l = 0; l < cfg->num_hidden_layers; l++) {
        struct { const char *suffix; int64_t rows, cols; int norm; } specs[] = {
            {"input_layernorm.weight", D, 1, 1},
            {"self_attn.q_proj.weight", qd, D, 0},
            {"self_attn.k_proj.weight", kvd, D, 0},
            {"self_attn.v_proj.weight", kvd, D, 0},
            {"self_attn.o_proj.weight", D, qd, 0},
            {"post_attention_layernorm.weight", D, 1, 1},
            {"mlp.gate_proj.weight", F, D, 0},
            {"mlp.up_proj.weight", F, D, 0},
            {"mlp.down_proj.weight", D, F, 0},
        };
        for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
            char name[160];
            snprintf(name, sizeof name, "model.layers.%d.%s", l, specs[i].suffix);
            SRLM_CHECK_GOTO(add_tensor(w, name, specs[i].rows, specs[i].cols, srlm_rng_key(seed, t++),
                                       specs[i].norm ? 0 : init_std, buf), st, done);
        }
    }
    SRLM_CHECK_GOTO(add_tensor(w, "model.norm.weight", D, 1, srlm_rng_key(seed, t++), 0, buf), st, done);
    if (!cfg->tie_word_embeddings)
        SRLM_CHECK_GOTO(add_tensor(w, "lm_head.weight", V, D, srlm_rng_key(seed, t++), init_std, buf), st, done);
    char path[1200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    SRLM_CHECK_GOTO(srlm_st_writer_write(w, path), st, done);
    snprintf(path, sizeof path, "%s/config.json", dir);
    SRLM_CHECK_GOTO(srlm_hf_config_save(path, cfg), st, done);
done:
    srlm_st_writer_free(w);
    free(buf);
    return st;
}
