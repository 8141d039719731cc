/* Saving a model as a Hugging Face folder: for each fixture checkpoint (GQA
 * untied fp32, tied fp32, bf16), save in F32, BF16 and sharded, reopen through
 * srlm_ckpt_open + srlm_llama_load and compare every weight (bitwise for F32,
 * after bf16 rounding for BF16); config.json loads equal; tied models have no
 * lm_head.weight; the vocab is unpadded; no DIR.tmp is left; saving over an
 * existing folder (and over a stale DIR.tmp) replaces it; tp > 1 is refused.
 * Synthetic checkpoints with vocab 100 (padded to 128 in memory) check that the
 * padding rows are not saved. */
#include <stdint.h>
#include <string.h>

#include "io/fsutil.h"
#include "model/llama_save.h"
#include "test.h"

static char g_root[900];
static srlm_backend *g_be;

static int configs_equal(const srlm_hf_config *a, const srlm_hf_config *b) {
    return a->vocab_size == b->vocab_size && a->hidden_size == b->hidden_size &&
           a->intermediate_size == b->intermediate_size && a->num_hidden_layers == b->num_hidden_layers &&
           a->num_attention_heads == b->num_attention_heads && a->num_key_value_heads == b->num_key_value_heads &&
           a->max_position_embeddings == b->max_position_embeddings && a->rms_norm_eps == b->rms_norm_eps &&
           a->rope_theta == b->rope_theta && a->tie_word_embeddings == b->tie_word_embeddings &&
           a->bos_token_id == b->bos_token_id && a->eos_token_id == b->eos_token_id &&
           a->pad_token_id == b->pad_token_id && a->head_dim == b->head_dim;
}

static float bf16_round(float x) { return srlm_bf16_to_f32(srlm_f32_to_bf16(x)); }

/* Reopen `dir` and compare its weights with m's; `bf16`: after rounding. */
static void check_saved(const srlm_llama *m, const char *dir, int bf16, int want_shards, const char *tok_src) {
    char path[1200];
    snprintf(path, sizeof path, "%s.tmp", dir);
    CHECK_MSG(!srlm_path_exists(path), "%s was left behind", path);
    srlm_checkpoint ck;
    srlm_status st = srlm_ckpt_open(&ck, dir);
    CHECK_MSG(st == SRLM_OK, "reopening %s: %s", dir, srlm_last_error());
    if (st != SRLM_OK) return;
    CHECK_MSG(configs_equal(&ck.config, &m->cfg), "%s: config.json differs", dir);
    CHECK(!strcmp(ck.config.torch_dtype, bf16 ? "bfloat16" : "float32"));
    CHECK_MSG(want_shards ? ck.n_files > 1 : ck.n_files == 1, "%s: %d file(s)", dir, ck.n_files);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    CHECK(srlm_path_exists(path) == (want_shards != 0));

    /* tied: no lm_head.weight in any file; untied: there */
    int has_head = 0;
    for (int i = 0; i < ck.n_files; i++) has_head |= srlm_st_find(&ck.files[i], "lm_head.weight") != NULL;
    CHECK(has_head == !m->tied);
    const srlm_st_tensor *emb = srlm_ckpt_find(&ck, "model.embed_tokens.weight");
    CHECK(emb && emb->ndim == 2 && emb->shape[0] == m->cfg.vocab_size && emb->shape[1] == m->dim);
    CHECK(emb && emb->dtype == (bf16 ? SRLM_BF16 : SRLM_F32));
    /* every file carries __metadata__ {"format":"pt"} */
    for (int i = 0; i < ck.n_files; i++) {
        const char *hdr = (const char *)ck.files[i].map + 8;
        CHECK(!strncmp(hdr, "{\"__metadata__\":{\"format\":\"pt\"}", 31));
    }

    srlm_llama m2;
    st = srlm_llama_load(&m2, &ck, g_be, NULL);
    CHECK_MSG(st == SRLM_OK, "loading %s: %s", dir, srlm_last_error());
    if (st == SRLM_OK) {
        CHECK(m2.n_params_local == m->n_params_local);
        const float *a = m->params.data, *b = m2.params.data;
        int64_t bad = 0;
        for (int64_t i = 0; i < m->n_params_local; i++) {
            float want = bf16 ? bf16_round(a[i]) : a[i];
            if (memcmp(&want, &b[i], sizeof want)) bad++;
        }
        CHECK_MSG(bad == 0, "%s: %lld of %lld weights differ", dir, (long long)bad, (long long)m->n_params_local);
        srlm_llama_free(&m2);
    }
    srlm_ckpt_close(&ck);

    if (tok_src) {
        size_t n1 = 0, n2 = 0;
        snprintf(path, sizeof path, "%s/tokenizer.model", dir);
        char *x = test_read_file(tok_src, &n1), *y = test_read_file(path, &n2);
        CHECK_MSG(x && y && n1 == n2 && !memcmp(x, y, n1), "%s differs from %s", path, tok_src);
        free(x);
        free(y);
    }
}

/* The fixtures' vocab (320) is a multiple of 64: a synthetic checkpoint with
 * vocab 100 (padded to 128 in memory) checks that the padding is not saved. */
static void make_synthetic(const char *dir, int tie) {
    srlm_hf_config c;
    srlm_hf_config_defaults(&c);
    c.vocab_size = 100;
    c.hidden_size = 16;
    c.intermediate_size = 24;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.head_dim = 4;
    c.max_position_embeddings = 64;
    c.tie_word_embeddings = tie;
    c.bos_token_id = 1;
    c.eos_token_id = 2;
    char path[1200];
    CHECK_OK(srlm_mkdir_p(dir));
    snprintf(path, sizeof path, "%s/config.json", dir);
    CHECK_OK(srlm_hf_config_save(path, &c));
    srlm_st_writer *w = NULL;
    CHECK_OK(srlm_st_writer_new(&w));
    if (!w) return;
    float *buf = malloc(sizeof(float) * 100 * 24);
    for (int i = 0; i < 100 * 24; i++) buf[i] = sinf((float)i * 0.37f) * 0.5f;
    int64_t D = 16, KV = 8, F = 24, V = 100;
    struct { const char *name; int64_t r, c; } t[] = {
        {"self_attn.q_proj.weight", D, D}, {"self_attn.k_proj.weight", KV, D},
        {"self_attn.v_proj.weight", KV, D}, {"self_attn.o_proj.weight", D, D},
        {"mlp.gate_proj.weight", F, D},     {"mlp.up_proj.weight", F, D},
        {"mlp.down_proj.weight", D, F},     {"input_layernorm.weight", D, 0},
        {"post_attention_layernorm.weight", D, 0},
    };
    int64_t shape[2] = {V, D};
    CHECK_OK(srlm_st_writer_add(w, "model.embed_tokens.weight", SRLM_F32, 2, shape, buf));
    for (int l = 0; l < 2; l++)
        for (int i = 0; i < 9; i++) {
            char name[128];
            snprintf(name, sizeof name, "model.layers.%d.%s", l, t[i].name);
            int64_t sh[2] = {t[i].r, t[i].c};
            CHECK_OK(srlm_st_writer_add(w, name, SRLM_F32, t[i].c ? 2 : 1, sh, buf + 7 * i + l));
        }
    shape[0] = D;
    CHECK_OK(srlm_st_writer_add(w, "model.norm.weight", SRLM_F32, 1, shape, buf + 3));
    shape[0] = V;
    if (!tie) CHECK_OK(srlm_st_writer_add(w, "lm_head.weight", SRLM_F32, 2, shape, buf + 5));
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    CHECK_OK(srlm_st_writer_write(w, path));
    srlm_st_writer_free(w);
    free(buf);
}

static void check_case(const char *name) {
    char src[1100], tok[1200], dir[1100];
    if (!strncmp(name, "synthetic", 9)) {
        snprintf(src, sizeof src, "%s/%s-src", g_root, name);
        make_synthetic(src, !strcmp(name, "synthetic-tied"));
        tok[0] = '\0';
    } else {
        snprintf(src, sizeof src, "%s/llama/%s", test_env("SRLM_FIXTURES", "tests/fixtures"), name);
        snprintf(tok, sizeof tok, "%s/tokenizer.model", src);
    }
    srlm_checkpoint ck;
    srlm_llama m;
    int before = test_failures;
    CHECK_OK(srlm_ckpt_open(&ck, src));
    if (test_failures == before) CHECK_OK(srlm_llama_load(&m, &ck, g_be, NULL));
    if (test_failures != before) return;
    CHECK(m.vocab_padded > m.cfg.vocab_size || m.cfg.vocab_size % 64 == 0);
    int src_bf16 = !strcmp(ck.config.torch_dtype, "bfloat16");

    snprintf(dir, sizeof dir, "%s/%s-f32", g_root, name);
    CHECK_OK(srlm_llama_save(&m, dir, SRLM_F32, tok[0] ? tok : NULL, 0));
    check_saved(&m, dir, 0, 0, tok[0] ? tok : NULL);

    snprintf(dir, sizeof dir, "%s/%s-bf16", g_root, name);
    CHECK_OK(srlm_llama_save(&m, dir, SRLM_BF16, NULL, 0));
    check_saved(&m, dir, 1, 0, NULL);
    if (src_bf16) {
        /* bf16 in, bf16 out: every tensor's bytes are the original file's */
        srlm_checkpoint a, b;
        CHECK_OK(srlm_ckpt_open(&b, dir));
        CHECK_OK(srlm_ckpt_open(&a, src));
        for (int i = 0; i < b.files[0].n_tensors; i++) {
            const srlm_st_tensor *tb = &b.files[0].tensors[i], *ta = srlm_ckpt_find(&a, tb->name);
            CHECK_MSG(ta && ta->nbytes == tb->nbytes && !memcmp(ta->data, tb->data, ta->nbytes),
                      "tensor %s differs from the original", tb->name);
        }
        srlm_ckpt_close(&a);
        srlm_ckpt_close(&b);
    }

    /* a tiny shard size forces one shard per tensor or so; saved over a stale
     * DIR.tmp (a killed run's) and then over itself unsharded */
    snprintf(dir, sizeof dir, "%s/%s-sharded", g_root, name);
    char stale[1200];
    snprintf(stale, sizeof stale, "%s.tmp/junk", dir);
    CHECK_OK(srlm_mkdir_p(stale));
    CHECK_OK(srlm_llama_save(&m, dir, SRLM_F32, NULL, 4096));
    check_saved(&m, dir, 0, 1, NULL);
    CHECK_OK(srlm_llama_save(&m, dir, SRLM_F32, NULL, 0));
    check_saved(&m, dir, 0, 0, NULL);
    CHECK(!srlm_path_exists(stale));

    srlm_llama_free(&m);
    srlm_ckpt_close(&ck);
}

static void check_replaces_and_refuses(void) {
    char src[1100], dir[1100], junk[1200];
    snprintf(src, sizeof src, "%s/llama/tiny-rope", test_env("SRLM_FIXTURES", "tests/fixtures"));
    srlm_checkpoint ck;
    srlm_llama m;
    int before = test_failures;
    CHECK_OK(srlm_ckpt_open(&ck, src));
    if (test_failures == before) CHECK_OK(srlm_llama_load(&m, &ck, g_be, NULL));
    if (test_failures != before) return;

    /* an existing folder with other files is replaced as a whole (trailing slash too) */
    snprintf(dir, sizeof dir, "%s/replace", g_root);
    snprintf(junk, sizeof junk, "%s/old-shard.safetensors", dir);
    CHECK_OK(srlm_mkdir_p(dir));
    CHECK_OK(srlm_write_file_atomic(junk, "x", 1));
    char slash[1200];
    snprintf(slash, sizeof slash, "%s/", dir);
    CHECK_OK(srlm_llama_save(&m, slash, SRLM_F32, NULL, 0));
    CHECK(!srlm_path_exists(junk));
    check_saved(&m, dir, 0, 0, NULL);

    /* (tensor-parallel saving is tested under MPI: tests/mpi/test_dist_train.c) */

    /* a missing tokenizer fails, saying so, and leaves neither DIR nor DIR.tmp */
    snprintf(dir, sizeof dir, "%s/notok", g_root);
    srlm_status st = srlm_llama_save(&m, dir, SRLM_F32, "/nonexistent/tokenizer.model", 0);
    CHECK_MSG(st == SRLM_BAD_INPUT && strstr(srlm_last_error(), "/nonexistent/tokenizer.model"), "%s",
              srlm_last_error());
    CHECK(!srlm_path_exists(dir));
    snprintf(junk, sizeof junk, "%s.tmp", dir);
    CHECK(!srlm_path_exists(junk));

    srlm_llama_free(&m);
    srlm_ckpt_close(&ck);
}

int main(void) {
    snprintf(g_root, sizeof g_root, "%s/test_llama_save", test_env("SRLM_TMP", "/tmp"));
    CHECK_OK(srlm_remove_tree(g_root));
    CHECK_OK(srlm_mkdir_p(g_root));
    CHECK_OK(srlm_backend_cpu_new(&g_be, 1));
    if (!g_be) TEST_DONE();
    check_case("tiny-gqa");
    check_case("tiny-rope");
    check_case("tiny-bf16");
    check_case("synthetic-untied");
    check_case("synthetic-tied");
    check_replaces_and_refuses();
    srlm_backend_free(g_be);
    TEST_DONE();
}
