#include "io/hf_config.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/fsutil.h"
#include "io/jsonl.h"

#define CONFIG_MAX_BYTES (16 * 1024 * 1024) /* a config.json is a few KB */

void srlm_hf_config_defaults(srlm_hf_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->max_position_embeddings = 2048;
    cfg->rms_norm_eps = 1e-6;
    cfg->rope_theta = 10000.0;
    cfg->tie_word_embeddings = 0;
    cfg->bos_token_id = cfg->eos_token_id = cfg->pad_token_id = -1;
    snprintf(cfg->torch_dtype, sizeof cfg->torch_dtype, "float32");
    snprintf(cfg->model_type, sizeof cfg->model_type, "llama");
}

static int is_mistral(const srlm_hf_config *c) { return !strcmp(c->model_type, "mistral"); }

srlm_status srlm_hf_check_seq_len(const srlm_hf_config *c, int64_t len, int last_is_target, const char *what) {
    const int64_t most = (int64_t)c->sliding_window + (last_is_target ? 1 : 0);
    if (c->sliding_window <= 0 || len <= most) return SRLM_OK;
    return SRLM_ERR(SRLM_BAD_INPUT, "%s: %lld tokens, more than the %lld that the model's sliding_window of %d allows "
                    "(config.json%s): srlm attends to every earlier token, which is this model's attention only "
                    "within the window; keep sequences within %lld tokens",
                    what, (long long)len, (long long)most, c->sliding_window,
                    last_is_target ? "; the last token is only a target" : "", (long long)most);
}

int srlm_hf_dtype_from_name(const char *name, srlm_dtype *out) {
    if (!strcmp(name, "float32")) { *out = SRLM_F32; return 1; }
    if (!strcmp(name, "bfloat16")) { *out = SRLM_BF16; return 1; }
    if (!strcmp(name, "float16")) { *out = SRLM_F16; return 1; }
    return 0;
}

static void describe(const cJSON *j, char *buf, size_t cap) {
    if (!j) snprintf(buf, cap, "nothing");
    else if (cJSON_IsNull(j)) snprintf(buf, cap, "null");
    else if (cJSON_IsTrue(j)) snprintf(buf, cap, "true");
    else if (cJSON_IsFalse(j)) snprintf(buf, cap, "false");
    else if (cJSON_IsNumber(j)) snprintf(buf, cap, "%.17g", j->valuedouble);
    else if (cJSON_IsString(j)) snprintf(buf, cap, "\"%.60s\"", j->valuestring);
    else if (cJSON_IsArray(j)) snprintf(buf, cap, "an array");
    else snprintf(buf, cap, "an object");
}

static int as_int(const cJSON *j, int *out) {
    if (!cJSON_IsNumber(j)) return 0;
    double v = j->valuedouble;
    if (!isfinite(v) || floor(v) != v || v < INT_MIN || v > INT_MAX) return 0;
    *out = (int)v;
    return 1;
}

/* An integer >= `min`. Absent: error if `required`, else *out is left alone. */
static srlm_status get_int(const char *path, const cJSON *root, const char *key, int required,
                           int min, int *out) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    char found[96];
    if (!j || (!required && cJSON_IsNull(j))) {
        if (required) return SRLM_ERR(SRLM_BAD_INPUT, "%s: required key \"%s\" is missing", path, key);
        return SRLM_OK;
    }
    int v;
    if (!as_int(j, &v) || v < min) {
        describe(j, found, sizeof found);
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: \"%s\": expected an integer >= %d, found %s", path, key,
                        min, found);
    }
    *out = v;
    return SRLM_OK;
}

static srlm_status get_positive_double(const char *path, const cJSON *root, const char *key,
                                       double *out) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    char found[96];
    if (!j || cJSON_IsNull(j)) return SRLM_OK;
    if (!cJSON_IsNumber(j) || !isfinite(j->valuedouble) || j->valuedouble <= 0) {
        describe(j, found, sizeof found);
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: \"%s\": expected a positive number, found %s", path, key,
                        found);
    }
    *out = j->valuedouble;
    return SRLM_OK;
}

/* null/absent -> -1; an integer; or a list (newer configs), of which the first id is kept. */
static srlm_status get_token_id(const char *path, const cJSON *root, const char *key, int *out) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    char found[96];
    *out = -1;
    if (!j || cJSON_IsNull(j)) return SRLM_OK;
    const cJSON *v = cJSON_IsArray(j) ? j->child : j;
    if (cJSON_IsArray(j) && !v) return SRLM_OK;
    if (!as_int(v, out) || *out < 0) {
        describe(v, found, sizeof found);
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: \"%s\": expected a non-negative token id or null, found %s",
                        path, key, found);
    }
    return SRLM_OK;
}

/* Keys that change the math and that srlm does not implement: refused unless
 * absent or at the value transformers writes by default. */
static srlm_status refuse_unsupported(const char *path, const cJSON *root) {
    char found[96];
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (j && !(cJSON_IsString(j) && (!strcmp(j->valuestring, "llama") || !strcmp(j->valuestring, "mistral")))) {
        describe(j, found, sizeof found);
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: \"model_type\": expected \"llama\" or \"mistral\", found %s "
                        "(only Llama-architecture models are supported)", path, found);
    }
    j = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
    if (j && !cJSON_IsNull(j)) {
        describe(j, found, sizeof found);
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: \"rope_scaling\" is not supported: expected null, found %s",
                        path, found);
    }
    static const char *const bools[] = {"attention_bias", "mlp_bias"};
    for (size_t i = 0; i < sizeof bools / sizeof bools[0]; i++) {
        j = cJSON_GetObjectItemCaseSensitive(root, bools[i]);
        if (j && !cJSON_IsNull(j) && !cJSON_IsFalse(j)) {
            describe(j, found, sizeof found);
            return SRLM_ERR(SRLM_BAD_INPUT, "%s: \"%s\" is not supported: expected false, found %s", path,
                            bools[i], found);
        }
    }
    j = cJSON_GetObjectItemCaseSensitive(root, "hidden_act");
    if (j && !cJSON_IsNull(j) && !(cJSON_IsString(j) && !strcmp(j->valuestring, "silu"))) {
        describe(j, found, sizeof found);
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: \"hidden_act\": only \"silu\" is supported, found %s", path,
                        found);
    }
    j = cJSON_GetObjectItemCaseSensitive(root, "pretraining_tp");
    int tp;
    if (j && !cJSON_IsNull(j) && !(as_int(j, &tp) && tp == 1)) {
        describe(j, found, sizeof found);
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: \"pretraining_tp\": only 1 is supported, found %s", path,
                        found);
    }
    return SRLM_OK;
}

srlm_status srlm_hf_config_validate(const srlm_hf_config *c, const char *path) {
    const struct { const char *key; int v; } pos[] = {
        {"vocab_size", c->vocab_size}, {"hidden_size", c->hidden_size},
        {"intermediate_size", c->intermediate_size}, {"num_hidden_layers", c->num_hidden_layers},
        {"num_attention_heads", c->num_attention_heads}, {"num_key_value_heads", c->num_key_value_heads},
        {"max_position_embeddings", c->max_position_embeddings}, {"head_dim", c->head_dim},
    };
    for (size_t i = 0; i < sizeof pos / sizeof pos[0]; i++)
        if (pos[i].v <= 0)
            return SRLM_ERR(SRLM_BAD_INPUT, "%s: \"%s\": expected a positive integer, found %d", path,
                            pos[i].key, pos[i].v);
    if (c->hidden_size % c->num_attention_heads)
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: hidden_size %d is not divisible by num_attention_heads %d",
                        path, c->hidden_size, c->num_attention_heads);
    if (c->num_attention_heads % c->num_key_value_heads)
        return SRLM_ERR(SRLM_BAD_INPUT,
                        "%s: num_attention_heads %d is not divisible by num_key_value_heads %d", path,
                        c->num_attention_heads, c->num_key_value_heads);
    if (!(c->rms_norm_eps > 0) || !isfinite(c->rms_norm_eps))
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: \"rms_norm_eps\": expected a positive number, found %g", path,
                        c->rms_norm_eps);
    if (!(c->rope_theta > 0) || !isfinite(c->rope_theta))
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: \"rope_theta\": expected a positive number, found %g", path,
                        c->rope_theta);
    srlm_dtype dt;
    if (!srlm_hf_dtype_from_name(c->torch_dtype, &dt))
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: \"torch_dtype\": expected \"float32\", \"bfloat16\" or "
                        "\"float16\", found \"%s\"", path, c->torch_dtype);
    if (c->sliding_window < 0 || (c->sliding_window > 0 && !is_mistral(c)))
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: \"sliding_window\" %d: expected null or a positive integer, and "
                        "only with model_type \"mistral\" (found \"%s\")", path, c->sliding_window, c->model_type);
    return SRLM_OK;
}

/* Read a small text file whole (config and index files only). */
static srlm_status read_small_file(const char *path, char **out, size_t *len) {
    srlm_status s = SRLM_OK;
    char *buf = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return SRLM_ERR(errno == ENOENT ? SRLM_BAD_INPUT : SRLM_FAILED, "cannot open %s: %s", path,
                        strerror(errno));
    if (fseek(f, 0, SEEK_END) != 0) {
        s = SRLM_ERR(SRLM_FAILED, "cannot read %s: %s", path, strerror(errno));
        goto done;
    }
    long n = ftell(f);
    if (n < 0 || n > CONFIG_MAX_BYTES) {
        s = SRLM_ERR(SRLM_BAD_INPUT, "%s: %ld bytes; expected a small JSON file (at most %d bytes)", path, n,
                     CONFIG_MAX_BYTES);
        goto done;
    }
    rewind(f);
    buf = malloc((size_t)n + 1);
    if (!buf) {
        s = SRLM_ERR(SRLM_FAILED, "out of memory reading %s", path);
        goto done;
    }
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
        s = SRLM_ERR(SRLM_FAILED, "cannot read %s: short read", path);
        goto done;
    }
    buf[n] = '\0';
    *out = buf;
    *len = (size_t)n;
    buf = NULL;
done:
    free(buf);
    fclose(f);
    return s;
}

static int line_of(const char *text, size_t at) {
    int line = 1;
    for (size_t i = 0; i < at; i++) line += text[i] == '\n';
    return line;
}

srlm_status srlm_json_read_file(const char *path, cJSON **out) {
    char *text = NULL;
    size_t len = 0;
    *out = NULL;
    SRLM_CHECK(read_small_file(path, &text, &len));
    const char *end = NULL;
    /* len + 1: cJSON wants the terminating NUL inside the length when it must end there. */
    cJSON *root = cJSON_ParseWithLengthOpts(text, len + 1, &end, 1);
    if (!root) {
        const char *err = cJSON_GetErrorPtr();
        int line = 1, col = 1;
        if (err && err >= text && err <= text + len)
            for (const char *p = text; p < err; p++) {
                if (*p == '\n') { line++; col = 1; }
                else col++;
            }
        free(text);
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: not valid JSON (error at line %d, column %d)", path, line, col);
    }
    srlm_status st = SRLM_OK;
    const char *nul_byte = memchr(text, '\0', len);
    long nul = srlm_json_nul_escape(text, len);
    const cJSON *parent = NULL, *dup = NULL;
    int nth = 0;
    if (nul_byte) {
        st = SRLM_ERR(SRLM_BAD_INPUT, "%s: a NUL byte at byte %ld; expected JSON text", path, (long)(nul_byte - text));
    } else if (nul >= 0) {
        st = SRLM_ERR(SRLM_BAD_INPUT, "%s: line %d: a string holds \\u0000 (a NUL character); remove it", path,
                      line_of(text, (size_t)nul));
    } else if (!cJSON_IsObject(root)) {
        st = SRLM_ERR(SRLM_BAD_INPUT, "%s: expected a JSON object at the top level", path);
    } else if ((dup = srlm_json_duplicate_key(root, &parent, &nth)) != NULL) {
        /* cJSON keeps both values and lookups see the first: say which one is meant */
        char where[300] = "";
        int line = srlm_json_key_line(text, len, dup->string, nth);
        if (line > 0) snprintf(where, sizeof where, "line %d: ", line);
        if (parent && parent->string)
            st = SRLM_ERR(SRLM_BAD_INPUT, "%s: %skey \"%s\" appears twice in \"%s\"; a key may appear once", path,
                          where, dup->string, parent->string);
        else
            st = SRLM_ERR(SRLM_BAD_INPUT, "%s: %skey \"%s\" appears twice; a key may appear once", path, where,
                          dup->string);
    }
    free(text);
    if (st != SRLM_OK) {
        cJSON_Delete(root);
        return st;
    }
    *out = root;
    return SRLM_OK;
}

srlm_status srlm_hf_config_load(const char *path, srlm_hf_config *cfg) {
    srlm_status s = SRLM_OK;
    cJSON *root = NULL;
    char found[96];
    srlm_hf_config_defaults(cfg);
    SRLM_CHECK(srlm_json_read_file(path, &root));
    SRLM_CHECK_GOTO(refuse_unsupported(path, root), s, done);
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (cJSON_IsString(mt)) snprintf(cfg->model_type, sizeof cfg->model_type, "%s", mt->valuestring);
    /* transformers' LlamaConfig has no window: the key means nothing there */
    if (is_mistral(cfg)) SRLM_CHECK_GOTO(get_int(path, root, "sliding_window", 0, 1, &cfg->sliding_window), s, done);

    SRLM_CHECK_GOTO(get_int(path, root, "vocab_size", 1, 1, &cfg->vocab_size), s, done);
    SRLM_CHECK_GOTO(get_int(path, root, "hidden_size", 1, 1, &cfg->hidden_size), s, done);
    SRLM_CHECK_GOTO(get_int(path, root, "intermediate_size", 1, 1, &cfg->intermediate_size), s, done);
    SRLM_CHECK_GOTO(get_int(path, root, "num_hidden_layers", 1, 1, &cfg->num_hidden_layers), s, done);
    SRLM_CHECK_GOTO(get_int(path, root, "num_attention_heads", 1, 1, &cfg->num_attention_heads), s, done);
    cfg->num_key_value_heads = cfg->num_attention_heads;
    SRLM_CHECK_GOTO(get_int(path, root, "num_key_value_heads", 0, 1, &cfg->num_key_value_heads), s, done);
    SRLM_CHECK_GOTO(get_int(path, root, "max_position_embeddings", 0, 1, &cfg->max_position_embeddings),
                    s, done);
    SRLM_CHECK_GOTO(get_positive_double(path, root, "rms_norm_eps", &cfg->rms_norm_eps), s, done);
    SRLM_CHECK_GOTO(get_positive_double(path, root, "rope_theta", &cfg->rope_theta), s, done);
    SRLM_CHECK_GOTO(get_token_id(path, root, "bos_token_id", &cfg->bos_token_id), s, done);
    SRLM_CHECK_GOTO(get_token_id(path, root, "eos_token_id", &cfg->eos_token_id), s, done);
    SRLM_CHECK_GOTO(get_token_id(path, root, "pad_token_id", &cfg->pad_token_id), s, done);

    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, "tie_word_embeddings");
    if (j && !cJSON_IsNull(j)) {
        if (!cJSON_IsBool(j)) {
            describe(j, found, sizeof found);
            s = SRLM_ERR(SRLM_BAD_INPUT, "%s: \"tie_word_embeddings\": expected true or false, found %s",
                         path, found);
            goto done;
        }
        cfg->tie_word_embeddings = cJSON_IsTrue(j);
    }
    /* transformers >= 4.56 writes "dtype"; older versions "torch_dtype". */
    const char *dkey = "torch_dtype";
    j = cJSON_GetObjectItemCaseSensitive(root, dkey);
    if (!j || cJSON_IsNull(j)) j = cJSON_GetObjectItemCaseSensitive(root, dkey = "dtype");
    if (j && !cJSON_IsNull(j)) {
        srlm_dtype dt;
        if (!cJSON_IsString(j) || !srlm_hf_dtype_from_name(j->valuestring, &dt)) {
            describe(j, found, sizeof found);
            s = SRLM_ERR(SRLM_BAD_INPUT, "%s: \"%s\": expected \"float32\", \"bfloat16\" or \"float16\", "
                         "found %s", path, dkey, found);
            goto done;
        }
        snprintf(cfg->torch_dtype, sizeof cfg->torch_dtype, "%s", j->valuestring);
    }
    if (cfg->hidden_size % cfg->num_attention_heads) {
        s = SRLM_ERR(SRLM_BAD_INPUT, "%s: hidden_size %d is not divisible by num_attention_heads %d", path,
                     cfg->hidden_size, cfg->num_attention_heads);
        goto done;
    }
    cfg->head_dim = cfg->hidden_size / cfg->num_attention_heads;
    SRLM_CHECK_GOTO(get_int(path, root, "head_dim", 0, 1, &cfg->head_dim), s, done);
    SRLM_CHECK_GOTO(srlm_hf_config_validate(cfg, path), s, done);
done:
    cJSON_Delete(root);
    return s;
}

/* A finite double as the shortest JSON number that reads back to the same value:
 * cJSON's own printer settles for 15 digits when they are within an epsilon, so
 * 0.30000000000000004 would come back as 0.3. NULL when out of memory. */
static cJSON *add_exact_number(cJSON *o, const char *key, double v) {
    char buf[32];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    return cJSON_AddRawToObject(o, key, buf);
}

srlm_status srlm_hf_config_save(const char *path, const srlm_hf_config *c) {
    srlm_status s = SRLM_OK;
    char *text = NULL, *out = NULL;
    SRLM_CHECK(srlm_hf_config_validate(c, path));
    cJSON *o = cJSON_CreateObject();
    if (!o) return SRLM_ERR(SRLM_FAILED, "out of memory writing %s", path);
    const int mistral = is_mistral(c);
    cJSON *arch = cJSON_AddArrayToObject(o, "architectures");
    if (arch) cJSON_AddItemToArray(arch, cJSON_CreateString(mistral ? "MistralForCausalLM" : "LlamaForCausalLM"));
    /* Keys in transformers' order of writing (alphabetical); MistralConfig
     * has no attention_bias, mlp_bias, pretraining_tp or rope_scaling. */
    if (!mistral) cJSON_AddFalseToObject(o, "attention_bias");
    cJSON_AddNumberToObject(o, "attention_dropout", 0.0);
#define ADD_ID(key, v) ((v) >= 0 ? (void)cJSON_AddNumberToObject(o, key, v) : (void)cJSON_AddNullToObject(o, key))
    ADD_ID("bos_token_id", c->bos_token_id);
    ADD_ID("eos_token_id", c->eos_token_id);
    cJSON_AddNumberToObject(o, "head_dim", c->head_dim);
    cJSON_AddStringToObject(o, "hidden_act", "silu");
    cJSON_AddNumberToObject(o, "hidden_size", c->hidden_size);
    cJSON_AddNumberToObject(o, "initializer_range", 0.02);
    cJSON_AddNumberToObject(o, "intermediate_size", c->intermediate_size);
    cJSON_AddNumberToObject(o, "max_position_embeddings", c->max_position_embeddings);
    if (!mistral) cJSON_AddFalseToObject(o, "mlp_bias");
    cJSON_AddStringToObject(o, "model_type", mistral ? "mistral" : "llama");
    cJSON_AddNumberToObject(o, "num_attention_heads", c->num_attention_heads);
    cJSON_AddNumberToObject(o, "num_hidden_layers", c->num_hidden_layers);
    cJSON_AddNumberToObject(o, "num_key_value_heads", c->num_key_value_heads);
    ADD_ID("pad_token_id", c->pad_token_id);
#undef ADD_ID
    if (!mistral) cJSON_AddNumberToObject(o, "pretraining_tp", 1);
    add_exact_number(o, "rms_norm_eps", c->rms_norm_eps);
    if (!mistral) cJSON_AddNullToObject(o, "rope_scaling");
    add_exact_number(o, "rope_theta", c->rope_theta);
    if (mistral && c->sliding_window > 0) cJSON_AddNumberToObject(o, "sliding_window", c->sliding_window);
    else if (mistral) cJSON_AddNullToObject(o, "sliding_window");
    cJSON_AddBoolToObject(o, "tie_word_embeddings", c->tie_word_embeddings != 0);
    cJSON_AddStringToObject(o, "torch_dtype", c->torch_dtype);
    cJSON_AddTrueToObject(o, "use_cache");
    cJSON_AddNumberToObject(o, "vocab_size", c->vocab_size);
    text = cJSON_Print(o);
    if (!text) {
        s = SRLM_ERR(SRLM_FAILED, "out of memory writing %s", path);
        goto done;
    }
    size_t n = strlen(text);
    out = malloc(n + 1);
    if (!out) {
        s = SRLM_ERR(SRLM_FAILED, "out of memory writing %s", path);
        goto done;
    }
    memcpy(out, text, n);
    out[n] = '\n';
    SRLM_CHECK_GOTO(srlm_write_file_atomic(path, out, n + 1), s, done);
done:
    free(out);
    cJSON_free(text);
    cJSON_Delete(o);
    return s;
}
