/* Hugging Face checkpoint folders: config.json round trip and refusals, single
 * and sharded weights, row/column slices, tied embeddings, index errors, and
 * `srlm inspect` on a folder written here. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io/checkpoint.h"
#include "io/fsutil.h"
#include "model/model_session.h"
#include "test.h"

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

static char g_root[900];

/* A tiny GQA Llama: 4 query heads sharing 2 KV heads. */
static srlm_hf_config tiny_config(int tie) {
    srlm_hf_config c;
    srlm_hf_config_defaults(&c);
    c.vocab_size = 37;
    c.hidden_size = 16;
    c.intermediate_size = 24;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.head_dim = 4;
    c.max_position_embeddings = 64;
    c.rms_norm_eps = 1e-5;
    c.rope_theta = 500000.0;
    c.tie_word_embeddings = tie;
    c.bos_token_id = 1;
    c.eos_token_id = 2;
    c.pad_token_id = -1;
    snprintf(c.torch_dtype, sizeof c.torch_dtype, "bfloat16");
    return c;
}

typedef struct { char name[96]; int64_t rows, cols; float *data; } tinfo; /* cols 0: 1-D */

/* Every Llama tensor for `c`, with deterministic data; lm_head only if untied. */
static int make_tensors(const srlm_hf_config *c, tinfo *t) {
    int n = 0, h = c->hidden_size, kv = c->num_key_value_heads * c->head_dim, f = c->intermediate_size;
#define ADD(r, co, ...) (snprintf(t[n].name, sizeof t[n].name, __VA_ARGS__), t[n].rows = (r), t[n].cols = (co), n++)
    ADD(c->vocab_size, h, "model.embed_tokens.weight");
    for (int l = 0; l < c->num_hidden_layers; l++) {
        ADD(h, h, "model.layers.%d.self_attn.q_proj.weight", l);
        ADD(kv, h, "model.layers.%d.self_attn.k_proj.weight", l);
        ADD(kv, h, "model.layers.%d.self_attn.v_proj.weight", l);
        ADD(h, h, "model.layers.%d.self_attn.o_proj.weight", l);
        ADD(f, h, "model.layers.%d.mlp.gate_proj.weight", l);
        ADD(f, h, "model.layers.%d.mlp.up_proj.weight", l);
        ADD(h, f, "model.layers.%d.mlp.down_proj.weight", l);
        ADD(h, 0, "model.layers.%d.input_layernorm.weight", l);
        ADD(h, 0, "model.layers.%d.post_attention_layernorm.weight", l);
    }
    ADD(h, 0, "model.norm.weight");
    if (!c->tie_word_embeddings) ADD(c->vocab_size, h, "lm_head.weight");
#undef ADD
    for (int i = 0; i < n; i++) {
        size_t m = (size_t)t[i].rows * (size_t)(t[i].cols ? t[i].cols : 1);
        t[i].data = malloc(m * sizeof(float));
        for (size_t j = 0; j < m; j++) t[i].data[j] = sinf((float)j * 0.731f + (float)i) * (1.0f + (float)i / 7.0f);
    }
    return n;
}

static void free_tensors(tinfo *t, int n) {
    for (int i = 0; i < n; i++) free(t[i].data);
}

static void add_all(srlm_st_writer *w, const tinfo *t, int from, int to, srlm_dtype dt) {
    for (int i = from; i < to; i++) {
        int64_t shape[2] = {t[i].rows, t[i].cols};
        CHECK_OK(srlm_st_writer_add(w, t[i].name, dt, t[i].cols ? 2 : 1, shape, t[i].data));
    }
}

static void dir_path(char *out, size_t cap, const char *name) { snprintf(out, cap, "%s/%s", g_root, name); }

static void write_text(const char *dir, const char *file, const char *text) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    CHECK_OK(srlm_write_file_atomic(path, text, strlen(text)));
}

/* A single-file checkpoint folder. */
static void write_single(const char *dir, const srlm_hf_config *c, const tinfo *t, int n, srlm_dtype dt) {
    char path[1024];
    CHECK_OK(srlm_mkdir_p(dir));
    snprintf(path, sizeof path, "%s/config.json", dir);
    CHECK_OK(srlm_hf_config_save(path, c));
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    srlm_st_writer *w = NULL;
    CHECK_OK(srlm_st_writer_new(&w));
    add_all(w, t, 0, n, dt);
    CHECK_OK(srlm_st_writer_write(w, path));
    srlm_st_writer_free(w);
}

static float rounded(float x, srlm_dtype dt) {
    if (dt == SRLM_BF16) return srlm_bf16_to_f32(srlm_f32_to_bf16(x));
    if (dt == SRLM_F16) return srlm_f16_to_f32(srlm_f32_to_f16(x));
    return x;
}

/* Whole tensors, row ranges and column ranges all equal the written data (rounded). */
static void check_contents(const srlm_checkpoint *ck, const tinfo *t, int n, srlm_dtype dt) {
    int bad = 0;
    for (int i = 0; i < n; i++) {
        int64_t R = t[i].rows, C = t[i].cols ? t[i].cols : 1;
        float *full = malloc((size_t)(R * C) * sizeof(float));
        CHECK_OK(srlm_ckpt_read_rows(ck, t[i].name, R, C, 0, R, full));
        for (int64_t j = 0; j < R * C; j++) {
            float want = rounded(t[i].data[j], dt);
            bad += memcmp(&full[j], &want, 4) != 0; /* bitwise */
        }
        int64_t r0 = R / 3, r1 = R - R / 4;
        float *part = malloc((size_t)(R * C) * sizeof(float));
        CHECK_OK(srlm_ckpt_read_rows(ck, t[i].name, R, C, r0, r1, part));
        bad += memcmp(part, full + r0 * C, (size_t)((r1 - r0) * C) * sizeof(float)) != 0;
        if (t[i].cols) {
            int64_t c0 = C / 4, c1 = C - C / 3;
            CHECK_OK(srlm_ckpt_read_cols(ck, t[i].name, R, C, c0, c1, part));
            for (int64_t r = 0; r < R; r++)
                bad += memcmp(part + r * (c1 - c0), full + r * C + c0, (size_t)(c1 - c0) * sizeof(float)) != 0;
        }
        free(part);
        free(full);
    }
    CHECK_MSG(bad == 0, "%d values or slices differ", bad);
}

static void test_config_round_trip(void) {
    char dir[1024], path[1100];
    dir_path(dir, sizeof dir, "config_rt");
    CHECK_OK(srlm_mkdir_p(dir));
    snprintf(path, sizeof path, "%s/config.json", dir);
    srlm_hf_config a = tiny_config(1), b;
    a.pad_token_id = 0;
    CHECK_OK(srlm_hf_config_save(path, &a));
    CHECK_OK(srlm_hf_config_load(path, &b));
    CHECK((a.vocab_size == b.vocab_size && a.hidden_size == b.hidden_size &&
          a.intermediate_size == b.intermediate_size && a.num_hidden_layers == b.num_hidden_layers &&
          a.num_attention_heads == b.num_attention_heads && a.num_key_value_heads == b.num_key_value_heads &&
          a.max_position_embeddings == b.max_position_embeddings && a.rms_norm_eps == b.rms_norm_eps &&
          a.rope_theta == b.rope_theta && a.tie_word_embeddings == b.tie_word_embeddings &&
          a.bos_token_id == b.bos_token_id && a.eos_token_id == b.eos_token_id &&
          a.pad_token_id == b.pad_token_id && !strcmp(a.torch_dtype, b.torch_dtype) && a.head_dim == b.head_dim));
    /* Doubles come back bit for bit, also those that need 17 digits (cJSON's own
     * printer stops at 15 when they are within an epsilon; found by fuzz_hf_config). */
    srlm_hf_config odd = a;
    odd.rms_norm_eps = 0.1 + 0.2;
    odd.rope_theta = nextafter(500000.0, 1e6);
    CHECK_OK(srlm_hf_config_save(path, &odd));
    CHECK_OK(srlm_hf_config_load(path, &b));
    CHECK_MSG(b.rms_norm_eps == odd.rms_norm_eps && b.rope_theta == odd.rope_theta, "read back %.17g, %.17g",
              b.rms_norm_eps, b.rope_theta);
    CHECK_OK(srlm_hf_config_save(path, &a));
    /* What transformers needs to pick LlamaForCausalLM. */
    cJSON *j = NULL;
    CHECK_OK(srlm_json_read_file(path, &j));
    if (j) {
        const cJSON *arch = cJSON_GetObjectItem(j, "architectures");
        CHECK(cJSON_IsArray(arch) && !strcmp(cJSON_GetArrayItem(arch, 0)->valuestring, "LlamaForCausalLM"));
        CHECK(!strcmp(cJSON_GetObjectItem(j, "model_type")->valuestring, "llama"));
        CHECK(!strcmp(cJSON_GetObjectItem(j, "hidden_act")->valuestring, "silu"));
        CHECK(cJSON_IsNull(cJSON_GetObjectItem(j, "rope_scaling")));
        cJSON_Delete(j);
    }
    /* A Mistral config goes back as one (MistralForCausalLM, its window, none
     * of LlamaConfig's own keys); a window on a llama config is refused. */
    srlm_hf_config mis = a;
    snprintf(mis.model_type, sizeof mis.model_type, "mistral");
    for (int w = 0; w <= 4096; w += 4096) {
        mis.sliding_window = w;
        CHECK_OK(srlm_hf_config_save(path, &mis));
        CHECK_OK(srlm_hf_config_load(path, &b));
        CHECK_MSG(!strcmp(b.model_type, "mistral") && b.sliding_window == w, "read back %s, window %d",
                  b.model_type, b.sliding_window);
        j = NULL;
        CHECK_OK(srlm_json_read_file(path, &j));
        if (j) {
            const cJSON *arch = cJSON_GetObjectItem(j, "architectures");
            CHECK(!strcmp(cJSON_GetArrayItem(arch, 0)->valuestring, "MistralForCausalLM"));
            CHECK(w ? cJSON_GetObjectItem(j, "sliding_window")->valueint == w
                    : cJSON_IsNull(cJSON_GetObjectItem(j, "sliding_window")));
            CHECK(!cJSON_GetObjectItem(j, "rope_scaling") && !cJSON_GetObjectItem(j, "attention_bias") &&
                  !cJSON_GetObjectItem(j, "pretraining_tp"));
            cJSON_Delete(j);
        }
    }
    mis = a;
    mis.sliding_window = 64;
    CHECK(srlm_hf_config_save(path, &mis) == SRLM_BAD_INPUT && strstr(srlm_last_error(), "only with model_type"));
    /* sequences up to the window pass; one longer is refused, naming both */
    mis.sliding_window = 0;
    CHECK_OK(srlm_hf_check_seq_len(&mis, 100000, 0, "x"));
    snprintf(mis.model_type, sizeof mis.model_type, "mistral");
    mis.sliding_window = 64;
    CHECK_OK(srlm_hf_check_seq_len(&mis, 64, 0, "x"));
    CHECK(srlm_hf_check_seq_len(&mis, 65, 0, "a prompt") == SRLM_BAD_INPUT);
    CHECK_MSG(strstr(srlm_last_error(), "a prompt: 65 tokens, more than the 64 that the model's sliding_window of 64"),
              "%s", srlm_last_error());
    /* one more where the last token is only a target (training, scoring) */
    CHECK_OK(srlm_hf_check_seq_len(&mis, 65, 1, "x"));
    CHECK(srlm_hf_check_seq_len(&mis, 66, 1, "train.sft.max_seq_len") == SRLM_BAD_INPUT);
    CHECK_MSG(strstr(srlm_last_error(), "train.sft.max_seq_len: 66 tokens, more than the 65") &&
                  strstr(srlm_last_error(), "the last token is only a target"), "%s", srlm_last_error());
}

/* Write the base config with `drop` removed and the members of `patch` (a JSON object) set. */
static srlm_status load_variant(const char *name, const char *drop, const char *patch, srlm_hf_config *out) {
    char dir[1024], path[1100];
    dir_path(dir, sizeof dir, "configs");
    CHECK_OK(srlm_mkdir_p(dir));
    snprintf(path, sizeof path, "%s/%s", dir, name);
    cJSON *o = cJSON_Parse("{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\","
                           "\"vocab_size\":37,\"hidden_size\":16,\"intermediate_size\":24,"
                           "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":2,"
                           "\"rms_norm_eps\":1e-5,\"rope_scaling\":null,\"attention_bias\":false,"
                           "\"mlp_bias\":false,\"hidden_act\":\"silu\",\"pretraining_tp\":1,"
                           "\"torch_dtype\":\"float16\",\"bos_token_id\":1,\"eos_token_id\":2}");
    if (drop) cJSON_DeleteItemFromObject(o, drop);
    cJSON *p = patch ? cJSON_Parse(patch) : NULL;
    for (cJSON *e = p ? p->child : NULL; e; e = e->next) {
        cJSON_DeleteItemFromObject(o, e->string);
        cJSON_AddItemToObject(o, e->string, cJSON_Duplicate(e, 1));
    }
    char *text = cJSON_Print(o);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    cJSON_free(text);
    cJSON_Delete(p);
    cJSON_Delete(o);
    srlm_clear_error();
    return srlm_hf_config_load(path, out);
}

static void test_config_refusals(void) {
    static const struct { const char *drop, *patch, *phrase; } bad[] = {
        {"hidden_size", NULL, "\"hidden_size\" is missing"},
        {"vocab_size", NULL, "\"vocab_size\" is missing"},
        {"intermediate_size", NULL, "\"intermediate_size\" is missing"},
        {"num_hidden_layers", NULL, "\"num_hidden_layers\" is missing"},
        {"num_attention_heads", NULL, "\"num_attention_heads\" is missing"},
        {NULL, "{\"hidden_size\":\"16\"}", "\"hidden_size\": expected an integer"},
        {NULL, "{\"hidden_size\":16.5}", "found 16.5"},
        {NULL, "{\"vocab_size\":0}", "\"vocab_size\": expected an integer >= 1, found 0"},
        {NULL, "{\"num_hidden_layers\":-3}", "found -3"},
        {NULL, "{\"num_key_value_heads\":0}", "num_key_value_heads"},
        {NULL, "{\"hidden_size\":18}", "not divisible by num_attention_heads"},
        {NULL, "{\"num_key_value_heads\":3}", "not divisible by num_key_value_heads"},
        {NULL, "{\"model_type\":\"qwen2\"}", "\"model_type\": expected \"llama\" or \"mistral\", found \"qwen2\""},
        {NULL, "{\"model_type\":\"mistral\",\"sliding_window\":0}", "\"sliding_window\": expected an integer >= 1"},
        {NULL, "{\"model_type\":\"mistral\",\"sliding_window\":\"4k\"}", "\"sliding_window\""},
        {NULL, "{\"rope_scaling\":{\"type\":\"linear\",\"factor\":2.0}}", "\"rope_scaling\" is not supported"},
        {NULL, "{\"attention_bias\":true}", "\"attention_bias\" is not supported"},
        {NULL, "{\"mlp_bias\":true}", "\"mlp_bias\" is not supported"},
        {NULL, "{\"hidden_act\":\"gelu\"}", "only \"silu\" is supported, found \"gelu\""},
        {NULL, "{\"pretraining_tp\":2}", "\"pretraining_tp\": only 1 is supported, found 2"},
        {NULL, "{\"torch_dtype\":\"float64\"}", "\"torch_dtype\": expected"},
        {NULL, "{\"tie_word_embeddings\":\"yes\"}", "\"tie_word_embeddings\": expected true or false"},
        {NULL, "{\"rms_norm_eps\":-1}", "\"rms_norm_eps\": expected a positive number"},
        {NULL, "{\"rope_theta\":\"big\"}", "\"rope_theta\": expected a positive number"},
        {NULL, "{\"eos_token_id\":\"</s>\"}", "\"eos_token_id\""},
        {NULL, "{\"head_dim\":0}", "\"head_dim\""},
    };
    srlm_hf_config c;
    for (int i = 0; i < COUNT(bad); i++) {
        char name[64];
        snprintf(name, sizeof name, "bad_config_%02d.json", i);
        srlm_status s = load_variant(name, bad[i].drop, bad[i].patch, &c);
        const char *msg = srlm_last_error();
        CHECK_MSG(s == SRLM_BAD_INPUT && strstr(msg, name) && strstr(msg, bad[i].phrase),
                  "config case %d (%s): %d '%s', wanted '%s'", i, bad[i].patch ? bad[i].patch : bad[i].drop,
                  (int)s, msg, bad[i].phrase);
    }
    /* Malformed JSON names the line. */
    char dir[1024];
    dir_path(dir, sizeof dir, "configs");
    write_text(dir, "broken.json", "{\n  \"hidden_size\": 16,\n  oops\n}\n");
    char path[1100];
    snprintf(path, sizeof path, "%s/broken.json", dir);
    CHECK(srlm_hf_config_load(path, &c) == SRLM_BAD_INPUT && strstr(srlm_last_error(), "broken.json") &&
          strstr(srlm_last_error(), "line 3"));

    /* The defaults transformers writes are accepted, and defaults fill the rest. */
    CHECK_OK(load_variant("ok_base.json", NULL, NULL, &c));
    CHECK(c.num_key_value_heads == 2 && c.head_dim == 4 && c.max_position_embeddings == 2048 &&
          c.rope_theta == 10000.0 && c.rms_norm_eps == 1e-5 && c.tie_word_embeddings == 0 &&
          c.pad_token_id == -1 && c.bos_token_id == 1 && !strcmp(c.torch_dtype, "float16"));
    CHECK_OK(load_variant("ok_nulls.json", "num_key_value_heads",
                          "{\"pretraining_tp\":null,\"hidden_act\":null,\"eos_token_id\":[7,8],"
                          "\"pad_token_id\":null,\"bos_token_id\":null,\"tie_word_embeddings\":true,"
                          "\"head_dim\":null}", &c));
    CHECK(c.num_key_value_heads == 4 && c.eos_token_id == 7 && c.bos_token_id == -1 && c.tie_word_embeddings == 1 &&
          c.head_dim == 4);
    /* model_type mistral: its window read (null: none); on a llama config the
     * key means nothing to transformers and is ignored */
    CHECK_OK(load_variant("ok_mistral.json", NULL, "{\"model_type\":\"mistral\",\"sliding_window\":4096}", &c));
    CHECK(!strcmp(c.model_type, "mistral") && c.sliding_window == 4096);
    CHECK_OK(load_variant("ok_mistral_null.json", NULL, "{\"model_type\":\"mistral\",\"sliding_window\":null}", &c));
    CHECK(!strcmp(c.model_type, "mistral") && c.sliding_window == 0);
    CHECK_OK(load_variant("ok_llama_window.json", NULL, "{\"sliding_window\":4096}", &c));
    CHECK(!strcmp(c.model_type, "llama") && c.sliding_window == 0);
    CHECK_OK(load_variant("ok_dtype.json", "torch_dtype", "{\"dtype\":\"bfloat16\",\"head_dim\":8}", &c));
    CHECK(!strcmp(c.torch_dtype, "bfloat16") && c.head_dim == 8);
    CHECK_OK(load_variant("ok_nodtype.json", "torch_dtype", NULL, &c));
    CHECK(!strcmp(c.torch_dtype, "float32"));
}

static void test_single(srlm_dtype dt, int tie) {
    char dir[1024];
    dir_path(dir, sizeof dir, tie ? "single_tied" : dt == SRLM_F32 ? "single_f32" : dt == SRLM_BF16 ? "single_bf16" : "single_f16");
    srlm_hf_config c = tiny_config(tie);
    tinfo t[64];
    int n = make_tensors(&c, t);
    write_single(dir, &c, t, n, dt);

    srlm_checkpoint ck;
    srlm_status s = srlm_ckpt_open(&ck, dir);
    CHECK_OK(s);
    if (s != SRLM_OK) { free_tensors(t, n); return; }
    CHECK(ck.n_files == 1 && ck.files[0].n_tensors == n);
    CHECK(ck.config.hidden_size == 16 && ck.config.tie_word_embeddings == tie);
    check_contents(&ck, t, n, dt);

    const srlm_st_tensor *head = srlm_ckpt_find(&ck, "lm_head.weight");
    if (tie) {
        /* Tied and absent: the embedding stands in for lm_head. */
        CHECK(head && !strcmp(head->name, "model.embed_tokens.weight"));
        float *a = malloc(37 * 16 * sizeof(float)), *b = malloc(37 * 16 * sizeof(float));
        CHECK_OK(srlm_ckpt_read_rows(&ck, "lm_head.weight", 37, 16, 0, 37, a));
        CHECK_OK(srlm_ckpt_read_rows(&ck, "model.embed_tokens.weight", 37, 16, 0, 37, b));
        CHECK(memcmp(a, b, 37 * 16 * sizeof(float)) == 0);
        free(a);
        free(b);
    } else {
        CHECK(head && !strcmp(head->name, "lm_head.weight"));
        CHECK(strstr(srlm_ckpt_tensor_file(&ck, head), "model.safetensors") != NULL);
    }

    /* Wrong expectations name the tensor, the file and both shapes. */
    float buf[64 * 64];
    s = srlm_ckpt_read_rows(&ck, "model.layers.1.self_attn.k_proj.weight", 16, 16, 0, 16, buf);
    const char *msg = srlm_last_error();
    CHECK_MSG(s == SRLM_BAD_INPUT && strstr(msg, "model.layers.1.self_attn.k_proj.weight") &&
                  strstr(msg, "model.safetensors") && strstr(msg, "expected shape [16, 16]") &&
                  strstr(msg, "found [8, 16]"), "%d '%s'", (int)s, msg);
    s = srlm_ckpt_read_cols(&ck, "model.norm.weight", 16, 2, 0, 1, buf);
    CHECK_MSG(s == SRLM_BAD_INPUT && strstr(srlm_last_error(), "found [16]"), "%d '%s'", (int)s, srlm_last_error());
    s = srlm_ckpt_read_rows(&ck, "model.layers.9.mlp.up_proj.weight", 24, 16, 0, 1, buf);
    CHECK_MSG(s == SRLM_BAD_INPUT && strstr(srlm_last_error(), "model.layers.9.mlp.up_proj.weight") &&
                  strstr(srlm_last_error(), "missing") && strstr(srlm_last_error(), "model.safetensors"),
              "%d '%s'", (int)s, srlm_last_error());
    CHECK(srlm_ckpt_read_rows(&ck, "model.norm.weight", 16, 1, 3, 17, buf) == SRLM_FAILED); /* caller bug */
    srlm_ckpt_close(&ck);
    free_tensors(t, n);
}

/* Untied config but no lm_head in the file: lookups fail with a clear message. */
static void test_untied_missing_head(void) {
    char dir[1024];
    dir_path(dir, sizeof dir, "untied_no_head");
    srlm_hf_config tied = tiny_config(1), untied = tiny_config(0);
    tinfo t[64];
    int n = make_tensors(&tied, t); /* no lm_head */
    write_single(dir, &untied, t, n, SRLM_F32);
    srlm_checkpoint ck;
    CHECK_OK(srlm_ckpt_open(&ck, dir));
    CHECK(srlm_ckpt_find(&ck, "lm_head.weight") == NULL);
    float buf[37 * 16];
    srlm_status s = srlm_ckpt_read_rows(&ck, "lm_head.weight", 37, 16, 0, 37, buf);
    CHECK_MSG(s == SRLM_BAD_INPUT && strstr(srlm_last_error(), "lm_head.weight") &&
                  strstr(srlm_last_error(), "tie_word_embeddings false"), "%d '%s'", (int)s, srlm_last_error());
    srlm_ckpt_close(&ck);
    free_tensors(t, n);
}

/* A config.json whose sizes lie about the weights: loading the model refuses it
 * naming the first tensor that does not fit, before allocating what the config
 * claims (found by fuzz_model_config: vocab_size 2^31-1 overflowed an int, and a
 * huge intermediate_size made the load fail as "out of memory"). */
static void test_config_lies_to_loader(void) {
    char dir[1024], path[1100];
    dir_path(dir, sizeof dir, "lying_config");
    srlm_hf_config real = tiny_config(0);
    tinfo t[64];
    int n = make_tensors(&real, t);
    write_single(dir, &real, t, n, SRLM_F32);
    snprintf(path, sizeof path, "%s/config.json", dir);
    static const struct { int vocab, hidden, ffn, layers, head_dim; const char *phrase; } lies[] = {
        {2147483647, 0, 0, 0, 0, "model.embed_tokens.weight': expected shape [2147483647, 16], found [37, 16]"},
        {0, 1048576, 0, 0, 4, "model.embed_tokens.weight': expected shape [37, 1048576], found [37, 16]"},
        {0, 0, 2147483646, 0, 0, "model.layers.0.mlp.gate_proj.weight': expected shape [2147483646, 16]"},
        {0, 0, 0, 100000, 0, "tensor 'model.layers.2.input_layernorm.weight' (expected shape [16]) is missing"},
        {0, 0, 0, 0, 2, "model.layers.0.self_attn.q_proj.weight': expected shape [8, 16], found [16, 16]"},
    };
    for (int i = 0; i < COUNT(lies); i++) {
        srlm_hf_config c = real;
        if (lies[i].vocab) c.vocab_size = lies[i].vocab;
        if (lies[i].hidden) c.hidden_size = lies[i].hidden;
        if (lies[i].ffn) c.intermediate_size = lies[i].ffn;
        if (lies[i].layers) c.num_hidden_layers = lies[i].layers;
        if (lies[i].head_dim) c.head_dim = lies[i].head_dim;
        CHECK_OK(srlm_hf_config_save(path, &c));
        srlm_model_session s;
        srlm_clear_error();
        srlm_status st = srlm_model_session_open(&s, dir, NULL, 0, 1);
        CHECK_MSG(st == SRLM_BAD_INPUT && strstr(srlm_last_error(), lies[i].phrase), "lie %d: %d '%s', wanted '%s'", i,
                  (int)st, srlm_last_error(), lies[i].phrase);
        if (st == SRLM_OK) srlm_model_session_close(&s);
    }
    CHECK_OK(srlm_hf_config_save(path, &real));
    srlm_model_session s;
    CHECK_OK(srlm_model_session_open(&s, dir, NULL, 0, 1));
    if (s.opened) srlm_model_session_close(&s);
    free_tensors(t, n);
}

/* Two shards and an index written by hand, as transformers lays them out. */
static void write_sharded(const char *dir, const srlm_hf_config *c, const tinfo *t, int n, int split,
                          const char *index_json) {
    char path[1024];
    CHECK_OK(srlm_mkdir_p(dir));
    snprintf(path, sizeof path, "%s/config.json", dir);
    CHECK_OK(srlm_hf_config_save(path, c));
    const char *names[2] = {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"};
    for (int s = 0; s < 2; s++) {
        srlm_st_writer *w = NULL;
        CHECK_OK(srlm_st_writer_new(&w));
        add_all(w, t, s ? split : 0, s ? n : split, SRLM_BF16);
        snprintf(path, sizeof path, "%s/%s", dir, names[s]);
        CHECK_OK(srlm_st_writer_write(w, path));
        srlm_st_writer_free(w);
    }
    if (index_json) { write_text(dir, "model.safetensors.index.json", index_json); return; }
    cJSON *o = cJSON_CreateObject(), *meta = cJSON_AddObjectToObject(o, "metadata"), *map = cJSON_AddObjectToObject(o, "weight_map");
    cJSON_AddNumberToObject(meta, "total_size", 0);
    for (int i = 0; i < n; i++) cJSON_AddStringToObject(map, t[i].name, names[i >= split]);
    char *text = cJSON_Print(o);
    write_text(dir, "model.safetensors.index.json", text);
    cJSON_free(text);
    cJSON_Delete(o);
}

static void expect_open_fails(const char *dir, const char *phrase1, const char *phrase2) {
    srlm_checkpoint ck;
    srlm_clear_error();
    srlm_status s = srlm_ckpt_open(&ck, dir);
    const char *msg = srlm_last_error();
    CHECK_MSG(s == SRLM_BAD_INPUT && strstr(msg, phrase1) && (!phrase2 || strstr(msg, phrase2)),
              "%s: %d '%s', wanted '%s' and '%s'", dir, (int)s, msg, phrase1, phrase2 ? phrase2 : "");
    if (s == SRLM_OK) srlm_ckpt_close(&ck);
}

static void test_sharded(void) {
    char dir[1024];
    srlm_hf_config c = tiny_config(0);
    tinfo t[64];
    int n = make_tensors(&c, t), split = n / 2;
    dir_path(dir, sizeof dir, "sharded");
    write_sharded(dir, &c, t, n, split, NULL);
    srlm_checkpoint ck;
    srlm_status s = srlm_ckpt_open(&ck, dir);
    CHECK_OK(s);
    if (s == SRLM_OK) {
        CHECK(ck.n_files == 2 && ck.files[0].n_tensors + ck.files[1].n_tensors == n);
        check_contents(&ck, t, n, SRLM_BF16);
        const srlm_st_tensor *x = srlm_ckpt_find(&ck, t[n - 1].name);
        CHECK(x && strstr(srlm_ckpt_tensor_file(&ck, x), "model-00002-of-00002.safetensors"));
        x = srlm_ckpt_find(&ck, t[0].name);
        CHECK(x && strstr(srlm_ckpt_tensor_file(&ck, x), "model-00001-of-00002.safetensors"));
        srlm_ckpt_close(&ck);
    }

    /* Index problems. */
    dir_path(dir, sizeof dir, "idx_malformed");
    write_sharded(dir, &c, t, n, split, "{\"weight_map\": {\"a\": }");
    expect_open_fails(dir, "model.safetensors.index.json", "not valid JSON");
    dir_path(dir, sizeof dir, "idx_no_map");
    write_sharded(dir, &c, t, n, split, "{\"metadata\": {}}");
    expect_open_fails(dir, "model.safetensors.index.json", "\"weight_map\"");
    dir_path(dir, sizeof dir, "idx_missing_shard");
    write_sharded(dir, &c, t, n, split, "{\"weight_map\": {\"model.norm.weight\": \"model-00003-of-00003.safetensors\"}}");
    expect_open_fails(dir, "model-00003-of-00003.safetensors", "does not exist");
    dir_path(dir, sizeof dir, "idx_wrong_shard");
    char idx[512];
    snprintf(idx, sizeof idx, "{\"weight_map\": {\"%s\": \"model-00001-of-00002.safetensors\"}}", t[n - 1].name);
    write_sharded(dir, &c, t, n, split, idx);
    expect_open_fails(dir, t[n - 1].name, "no such tensor");
    dir_path(dir, sizeof dir, "idx_bad_name");
    write_sharded(dir, &c, t, n, split, "{\"weight_map\": {\"model.norm.weight\": \"../x.safetensors\"}}");
    expect_open_fails(dir, "model.safetensors.index.json", "expected a file name");
    /* The same tensor in both shards. */
    dir_path(dir, sizeof dir, "idx_duplicate");
    write_sharded(dir, &c, t, n, split + 1, NULL);
    char p2[1100];
    snprintf(p2, sizeof p2, "%s/model-00002-of-00002.safetensors", dir);
    srlm_st_writer *w = NULL;
    CHECK_OK(srlm_st_writer_new(&w));
    add_all(w, t, split, n, SRLM_BF16);
    CHECK_OK(srlm_st_writer_write(w, p2));
    srlm_st_writer_free(w);
    expect_open_fails(dir, t[split].name, "in both");
    /* A corrupt shard is reported with its own name. */
    dir_path(dir, sizeof dir, "idx_corrupt_shard");
    write_sharded(dir, &c, t, n, split, NULL);
    snprintf(p2, sizeof p2, "%s/model-00002-of-00002.safetensors", dir);
    CHECK(truncate(p2, 100) == 0);
    expect_open_fails(dir, "model-00002-of-00002.safetensors", NULL);
    /* No weights at all; no config. */
    dir_path(dir, sizeof dir, "no_weights");
    CHECK_OK(srlm_mkdir_p(dir));
    char cfg[1100];
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    CHECK_OK(srlm_hf_config_save(cfg, &c));
    expect_open_fails(dir, "found neither model.safetensors nor", NULL);
    dir_path(dir, sizeof dir, "no_config");
    CHECK_OK(srlm_mkdir_p(dir));
    expect_open_fails(dir, "config.json", NULL);
    dir_path(dir, sizeof dir, "not_a_dir_at_all");
    expect_open_fails(dir, "not_a_dir_at_all", "not a folder");
    free_tensors(t, n);
}

/* Thousands separators, written differently from the command's own helper. */
static void commas(unsigned long long v, char *out) {
    if (v < 1000) { sprintf(out, "%llu", v); return; }
    commas(v / 1000, out);
    sprintf(out + strlen(out), ",%03llu", v % 1000);
}

/* Run `srlm inspect ARGS`, capturing stdout+stderr; returns the exit code. */
static int run_inspect(const char *bin, const char *args, char *out, size_t cap) {
    char cmd[2400];
    snprintf(cmd, sizeof cmd, "'%s' inspect %s 2>&1", bin, args);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int rc = pclose(p);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void test_inspect_command(void) {
    const char *bin = getenv("SRLM_BIN");
    if (!bin || access(bin, X_OK) != 0) {
        printf("note: SRLM_BIN not set, srlm inspect not tested\n");
        return;
    }
    static char out[65536];
    char dir[1024], args[1100], line[256];
    for (int tie = 0; tie <= 1; tie++) {
        srlm_hf_config c = tiny_config(tie);
        c.vocab_size = 1003; /* enough parameters for separators */
        tinfo t[64];
        int n = make_tensors(&c, t);
        dir_path(dir, sizeof dir, tie ? "inspect_tied" : "inspect_ckpt");
        write_single(dir, &c, t, n, SRLM_BF16);
        snprintf(args, sizeof args, "'%s'", dir);
        int rc = run_inspect(bin, args, out, sizeof out);
        CHECK_MSG(rc == 0, "inspect exit %d: %s", rc, out);
        CHECK(strstr(out, "hidden_size: 16\n") && strstr(out, "num_key_value_heads: 2\n") &&
              strstr(out, "vocab_size: 1003\n") && strstr(out, "torch_dtype: bfloat16\n") &&
              strstr(out, "rope_theta: 500000\n") && strstr(out, "head_dim: 4\n"));
        CHECK(strstr(out, tie ? "tie_word_embeddings: true" : "tie_word_embeddings: false"));
        unsigned long long params = 0;
        const char *prev = out;
        /* Every tensor, with dtype, shape and file, in name order. */
        char *sorted[64];
        for (int i = 0; i < n; i++) sorted[i] = t[i].name;
        for (int i = 1; i < n; i++)
            for (int j = i; j > 0 && strcmp(sorted[j - 1], sorted[j]) > 0; j--) {
                char *x = sorted[j]; sorted[j] = sorted[j - 1]; sorted[j - 1] = x;
            }
        for (int i = 0; i < n; i++) {
            const tinfo *ti = NULL;
            for (int j = 0; j < n; j++) if (!strcmp(t[j].name, sorted[i])) ti = &t[j];
            snprintf(line, sizeof line, "  %s ", ti->name);
            const char *at = strstr(out, line);
            CHECK_MSG(at && at >= prev, "tensor %s missing or out of order", ti->name);
            if (ti->cols) snprintf(line, sizeof line, "BF16  [%lld, %lld]", (long long)ti->rows, (long long)ti->cols);
            else snprintf(line, sizeof line, "BF16  [%lld]", (long long)ti->rows);
            const char *eol = at ? strchr(at, '\n') : NULL;
            const char *sh = at ? strstr(at, line) : NULL;
            CHECK_MSG(sh && eol && sh < eol && strstr(at, "model.safetensors") < eol, "line of %s", ti->name);
            if (at) prev = at;
            params += (unsigned long long)ti->rows * (unsigned long long)(ti->cols ? ti->cols : 1);
        }
        /* Independent count: embeddings, per-layer weights, norms, lm_head if untied. */
        unsigned long long h = 16, f = 24, kvd = 8, V = 1003;
        unsigned long long expect = V * h + 2 * (h * h * 2 + kvd * h * 2 + 3 * f * h + 2 * h) + h + (tie ? 0 : V * h);
        CHECK(params == expect);
        char num[64], want[96];
        commas(expect, num);
        snprintf(want, sizeof want, "parameters: %s\n", num);
        CHECK_MSG(strstr(out, want) != NULL, "wanted '%s' in:\n%s", want, out);
        CHECK(!tie || (strstr(out, "lm_head.weight") && strstr(out, "tied to model.embed_tokens.weight")));
        free_tensors(t, n);
    }

    /* A corrupt checkpoint: exit 2, a message naming the file. */
    dir_path(dir, sizeof dir, "inspect_corrupt");
    srlm_hf_config c = tiny_config(0);
    tinfo t[64];
    int n = make_tensors(&c, t);
    write_single(dir, &c, t, n, SRLM_F32);
    char p[1100];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    CHECK(truncate(p, 2000) == 0);
    snprintf(args, sizeof args, "'%s'", dir);
    int rc = run_inspect(bin, args, out, sizeof out);
    CHECK_MSG(rc == 2 && strstr(out, "srlm inspect: error:") && strstr(out, "model.safetensors") &&
                  strstr(out, "truncated"), "corrupt: exit %d: %s", rc, out);
    free_tensors(t, n);

    rc = run_inspect(bin, "", out, sizeof out);
    CHECK_MSG(rc == 2 && strstr(out, "DIR"), "no args: exit %d: %s", rc, out);
    rc = run_inspect(bin, "--bogus x", out, sizeof out);
    CHECK_MSG(rc == 2 && strstr(out, "--bogus"), "bad flag: exit %d: %s", rc, out);
    rc = run_inspect(bin, "--help", out, sizeof out);
    CHECK_MSG(rc == 0 && strstr(out, "usage: srlm inspect"), "help: exit %d: %s", rc, out);
}

int main(void) {
    snprintf(g_root, sizeof g_root, "%s/checkpoint", test_env("SRLM_TMP", "/tmp/srlm-test"));
    CHECK_OK(srlm_mkdir_p(g_root));
    test_config_round_trip();
    test_config_refusals();
    test_single(SRLM_F32, 0);
    test_single(SRLM_BF16, 0);
    test_single(SRLM_F16, 0);
    test_single(SRLM_BF16, 1);
    test_untied_missing_head();
    test_config_lies_to_loader();
    test_sharded();
    test_inspect_command();
    TEST_DONE();
}
