#include "model/llama_save.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/watchdog.h"
#include "io/fsutil.h"
#include "io/hf_config.h"
#include "io/safetensors.h"

/* How a tensor is spread over the tp ranks. */
typedef enum {
    SPLIT_NONE,   /* replicated (norm weights): rank 0's copy */
    SPLIT_ROWS,   /* column-parallel: rank r holds a row range */
    SPLIT_KV,     /* rows of k/v; tp > n_kv_heads: only the first rank of each copy group sends */
    SPLIT_VOCAB,  /* vocab-parallel rows; padding rows past vocab_size are not sent */
    SPLIT_COLS,   /* row-parallel: rank r holds a column range */
} split_kind;

/* One tensor to write: its HF name and full shape, and this rank's part of it. */
typedef struct {
    char       name[96];
    int64_t    rows, cols;  /* full HF shape; cols 0: a 1-D tensor of `rows` elements */
    srlm_view  src;         /* this rank's part: rows x max(cols, 1) unless split */
    split_kind split;
    size_t     nbytes;      /* in the saved dtype */
    int        shard;
} save_item;

/* Every tensor of m in HF order; *n is set. The vocab rows are cut to vocab_size. */
static srlm_status list_tensors(const srlm_llama *m, srlm_dtype dtype, save_item **out, int *n) {
    const int L = m->n_layers, D = m->dim;
    const int64_t V = m->cfg.vocab_size;
    int cap = 3 + 9 * L;
    save_item *t = calloc((size_t)cap, sizeof *t);
    if (!t) return SRLM_ERR(SRLM_FAILED, "out of memory listing the model's tensors");
    int k = 0;
    /* norms are (1, D) views written as 1-D tensors of D elements */
#define ADD(view, r, c, how, ...)                                              \
    do {                                                                       \
        snprintf(t[k].name, sizeof t[k].name, __VA_ARGS__);                    \
        t[k].rows = (r);                                                       \
        t[k].cols = (c);                                                       \
        t[k].src = srlm_llama_record_view(m, (view)); /* F32 when training */  \
        t[k].split = (how);                                                    \
        t[k].nbytes = (size_t)(r) * (size_t)((c) ? (c) : 1) * srlm_dtype_size(dtype); \
        k++;                                                                   \
    } while (0)
    const srlm_hf_config *c = &m->cfg;
    const int64_t hd = m->head_dim, F = c->intermediate_size;
    const int64_t q_rows = (int64_t)c->num_attention_heads * hd, kv_rows = (int64_t)c->num_key_value_heads * hd;
    ADD(m->embed, V, D, SPLIT_VOCAB, "model.embed_tokens.weight");
    for (int l = 0; l < L; l++) {
        const srlm_llama_layer *ly = &m->layers[l];
        ADD(ly->attn_norm, D, 0, SPLIT_NONE, "model.layers.%d.input_layernorm.weight", l);
        ADD(ly->wq, q_rows, D, SPLIT_ROWS, "model.layers.%d.self_attn.q_proj.weight", l);
        ADD(ly->wk, kv_rows, D, SPLIT_KV, "model.layers.%d.self_attn.k_proj.weight", l);
        ADD(ly->wv, kv_rows, D, SPLIT_KV, "model.layers.%d.self_attn.v_proj.weight", l);
        ADD(ly->wo, D, q_rows, SPLIT_COLS, "model.layers.%d.self_attn.o_proj.weight", l);
        ADD(ly->mlp_norm, D, 0, SPLIT_NONE, "model.layers.%d.post_attention_layernorm.weight", l);
        ADD(ly->w_gate, F, D, SPLIT_ROWS, "model.layers.%d.mlp.gate_proj.weight", l);
        ADD(ly->w_up, F, D, SPLIT_ROWS, "model.layers.%d.mlp.up_proj.weight", l);
        ADD(ly->w_down, D, F, SPLIT_COLS, "model.layers.%d.mlp.down_proj.weight", l);
    }
    ADD(m->final_norm, D, 0, SPLIT_NONE, "model.norm.weight");
    if (!m->tied) ADD(m->lm_head, V, D, SPLIT_VOCAB, "lm_head.weight");
#undef ADD
    *out = t;
    *n = k;
    return SRLM_OK;
}

/* Greedy shards in order, as transformers does: a new shard when the next tensor
 * would take the current one above `limit` (a tensor larger than limit alone). */
static int plan_shards(save_item *t, int n, size_t limit) {
    int shard = 0;
    size_t used = 0;
    for (int i = 0; i < n; i++) {
        if (used > 0 && used + t[i].nbytes > limit) {
            shard++;
            used = 0;
        }
        t[i].shard = shard;
        used += t[i].nbytes;
    }
    return shard + 1;
}

static void shard_name(char *buf, size_t cap, int shard, int n_shards) {
    if (n_shards == 1) snprintf(buf, cap, "model.safetensors");
    else snprintf(buf, cap, "model-%05d-of-%05d.safetensors", shard + 1, n_shards);
}

/* model.safetensors.index.json, as transformers writes it. */
static srlm_status write_index(const char *path, const save_item *t, int n, int n_shards) {
    srlm_status st = SRLM_OK;
    char *text = NULL;
    cJSON *root = cJSON_CreateObject();
    cJSON *meta = root ? cJSON_AddObjectToObject(root, "metadata") : NULL;
    cJSON *map = root ? cJSON_AddObjectToObject(root, "weight_map") : NULL;
    if (!meta || !map) {
        st = SRLM_ERR(SRLM_FAILED, "out of memory writing %s", path);
        goto done;
    }
    size_t total = 0;
    for (int i = 0; i < n; i++) total += t[i].nbytes;
    cJSON_AddNumberToObject(meta, "total_size", (double)total); /* exact below 2^53 */
    char file[64];
    for (int i = 0; i < n; i++) {
        shard_name(file, sizeof file, t[i].shard, n_shards);
        if (!cJSON_AddStringToObject(map, t[i].name, file)) {
            st = SRLM_ERR(SRLM_FAILED, "out of memory writing %s", path);
            goto done;
        }
    }
    text = cJSON_Print(root);
    if (!text) {
        st = SRLM_ERR(SRLM_FAILED, "out of memory writing %s", path);
        goto done;
    }
    SRLM_CHECK_GOTO(srlm_write_file_atomic(path, text, strlen(text)), st, done);
done:
    free(text);
    cJSON_Delete(root);
    return st;
}

/* Copy a file, fsynced under its final name. */
static srlm_status copy_file(const char *src, const char *dst) {
    srlm_status st = SRLM_OK;
    srlm_atomic_file f = {.fd = -1};
    char buf[1 << 16];
    FILE *in = fopen(src, "rb");
    if (!in) return SRLM_ERR(SRLM_BAD_INPUT, "%s: cannot open tokenizer: %s", src, strerror(errno));
    SRLM_CHECK_GOTO(srlm_atomic_open(&f, dst), st, done);
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, in)) > 0) SRLM_CHECK_GOTO(srlm_atomic_write(&f, buf, got), st, done);
    if (ferror(in)) {
        st = SRLM_ERR(SRLM_FAILED, "%s: read error copying the tokenizer", src);
        goto done;
    }
    SRLM_CHECK_GOTO(srlm_atomic_commit(&f), st, done);
done:
    if (st != SRLM_OK) srlm_atomic_abort(&f);
    fclose(in);
    return st;
}

/* Rows of a row-split tensor that tp rank r sends. */
static int64_t rows_sent(const srlm_llama *m, const save_item *it, int r) {
    if (it->split == SPLIT_VOCAB) {
        int64_t n = (int64_t)m->cfg.vocab_size - (int64_t)r * m->vocab_local;
        return n < 0 ? 0 : n > m->vocab_local ? m->vocab_local : n;
    }
    int nkv = m->cfg.num_key_value_heads;
    if (it->split == SPLIT_KV && nkv < m->tp_size) {
        /* copies of one KV head sit on consecutive ranks: the first of them sends */
        int q_per_kv = m->cfg.num_attention_heads / nkv;
        int head = r * m->n_heads_local / q_per_kv, prev = (r - 1) * m->n_heads_local / q_per_kv;
        return r == 0 || head != prev ? it->src.rows : 0;
    }
    return it->src.rows;
}

/* The full tensor on tp rank 0 (`full`); the other ranks send their parts.
 * Collective over the tp group. local and recv: scratch as large as `full`. */
static srlm_status gather_full(const srlm_llama *m, const save_item *it, float *full, float *local,
                               float *recv) {
    srlm_backend *be = m->be;
    const int tp = m->tp_size, root = m->tp_rank == 0;
    srlm_view src = it->src;
    if (it->split == SPLIT_NONE) return root ? be->ops->download(be, full, &src) : SRLM_OK;
    if (tp == 1) {
        if (it->split == SPLIT_VOCAB) src = srlm_view_rows(src, 0, it->rows); /* drop vocab padding */
        return be->ops->download(be, full, &src);
    }
    const int cols_split = it->split == SPLIT_COLS;
    size_t *counts = malloc(sizeof(size_t) * (size_t)tp);
    if (!counts) return SRLM_ERR(SRLM_FAILED, "out of memory");
    for (int r = 0; r < tp; r++)
        counts[r] = (size_t)((cols_split ? src.rows : rows_sent(m, it, r)) * src.cols) * sizeof(float);
    srlm_view part = srlm_view_rows(src, 0, cols_split ? src.rows : rows_sent(m, it, m->tp_rank));
    srlm_status st = SRLM_OK;
    if (part.rows > 0) st = be->ops->download(be, local, &part);
    if (st == SRLM_OK)
        st = srlm_comm_gatherv_bytes(m->tp, local, counts[m->tp_rank], root ? (cols_split ? recv : full) : NULL,
                                     counts, 0);
    if (st == SRLM_OK && root && cols_split) {
        /* rank r's block is rows x cl: column range [r*cl, (r+1)*cl) of every row */
        const int64_t rows = src.rows, cl = src.cols, cols = it->cols;
        for (int r = 0; r < tp; r++)
            for (int64_t i = 0; i < rows; i++)
                memcpy(full + i * cols + r * cl, recv + ((int64_t)r * rows + i) * cl, sizeof(float) * (size_t)cl);
    }
    free(counts);
    return st;
}

/* Every shard, one writer at a time, so at most one shard's bytes sit in memory.
 * Collective over the tp group; only its rank 0 writes. */
static srlm_status write_shards(const srlm_llama *m, const char *tmp, srlm_dtype dtype, save_item *t,
                                int n, int n_shards) {
    const int root = m->tp_rank == 0;
    srlm_status st = SRLM_OK;
    srlm_st_writer *w = NULL;
    size_t biggest = 0;
    for (int i = 0; i < n; i++) {
        size_t e = (size_t)t[i].rows * (size_t)(t[i].cols ? t[i].cols : 1);
        if (e > biggest) biggest = e;
    }
    float *stage = malloc(3 * biggest * sizeof(float));
    if (!stage) return SRLM_ERR(SRLM_FAILED, "out of memory for the save buffers (3 x %zu floats)", biggest);
    float *local = stage + biggest, *recv = stage + 2 * biggest;
    char file[64], path[1200];
    int i = 0;
    for (int s = 0; s < n_shards; s++) {
        if (root) SRLM_CHECK_GOTO(srlm_st_writer_new(&w), st, done);
        for (; i < n && t[i].shard == s; i++) {
            srlm_watchdog_progress("saving the model");
            SRLM_CHECK_GOTO(gather_full(m, &t[i], stage, local, recv), st, done);
            int64_t shape[2] = {t[i].rows, t[i].cols};
            if (root)
                SRLM_CHECK_GOTO(srlm_st_writer_add(w, t[i].name, dtype, t[i].cols ? 2 : 1, shape, stage), st, done);
        }
        if (!root) continue;
        shard_name(file, sizeof file, s, n_shards);
        SRLM_CHECK_GOTO(srlm_path_join(path, sizeof path, tmp, file), st, done);
        SRLM_CHECK_GOTO(srlm_st_writer_write(w, path), st, done);
        srlm_st_writer_free(w);
        w = NULL;
    }
done:
    srlm_st_writer_free(w);
    free(stage);
    return st;
}

srlm_status srlm_llama_save(const srlm_llama *m, const char *dir, srlm_dtype dtype,
                            const char *tokenizer_path, size_t shard_bytes) {
    if (dtype != SRLM_F32 && dtype != SRLM_BF16 && dtype != SRLM_F16)
        return SRLM_ERR(SRLM_FAILED, "%s: cannot save in unknown dtype %d", dir, (int)dtype);
    if (shard_bytes == 0) shard_bytes = SRLM_DEFAULT_SHARD_BYTES;

    /* DIR without trailing slashes, DIR.tmp, and the parent that holds both */
    char final[1024], tmp[1100], parent[1024], path[1200];
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/') len--;
    if (len == 0 || len >= sizeof final)
        return SRLM_ERR(SRLM_BAD_INPUT, "cannot save a model to '%s': empty or too long a folder name", dir);
    memcpy(final, dir, len);
    final[len] = '\0';
    snprintf(tmp, sizeof tmp, "%s.tmp", final);
    const char *slash = strrchr(final, '/');
    if (!slash) snprintf(parent, sizeof parent, ".");
    else if (slash == final) snprintf(parent, sizeof parent, "/");
    else snprintf(parent, sizeof parent, "%.*s", (int)(slash - final), final);

    /* tp ranks all take part (each sends its slices); rank 0 of the group writes */
    const int root = m->tp_rank == 0;
    srlm_status st = SRLM_OK;
    save_item *t = NULL;
    int n = 0;
    if (root) {
        SRLM_CHECK_GOTO(srlm_remove_tree(tmp), st, done); /* left by a killed run */
        SRLM_CHECK_GOTO(srlm_mkdir_p(tmp), st, done);
        srlm_hf_config cfg = m->cfg;
        snprintf(cfg.torch_dtype, sizeof cfg.torch_dtype, "%s",
                 dtype == SRLM_F32 ? "float32" : dtype == SRLM_BF16 ? "bfloat16" : "float16");
        SRLM_CHECK_GOTO(srlm_path_join(path, sizeof path, tmp, "config.json"), st, done);
        SRLM_CHECK_GOTO(srlm_hf_config_save(path, &cfg), st, done);
    }
    SRLM_CHECK_GOTO(list_tensors(m, dtype, &t, &n), st, done);
    int n_shards = plan_shards(t, n, shard_bytes);
    SRLM_CHECK_GOTO(write_shards(m, tmp, dtype, t, n, n_shards), st, done);
    if (!root) goto done;
    if (n_shards > 1) {
        SRLM_CHECK_GOTO(srlm_path_join(path, sizeof path, tmp, "model.safetensors.index.json"), st, done);
        SRLM_CHECK_GOTO(write_index(path, t, n, n_shards), st, done);
    }
    if (tokenizer_path) {
        SRLM_CHECK_GOTO(srlm_path_join(path, sizeof path, tmp, "tokenizer.model"), st, done);
        SRLM_CHECK_GOTO(copy_file(tokenizer_path, path), st, done);
    }
    /* every file was fsynced with its folder by the atomic writes; now swap folders */
    SRLM_CHECK_GOTO(srlm_remove_tree(final), st, done);
    if (rename(tmp, final) != 0) {
        st = SRLM_ERR(SRLM_FAILED, "cannot rename %s to %s: %s", tmp, final, strerror(errno));
        goto done;
    }
    SRLM_CHECK_GOTO(srlm_fsync_dir(parent), st, done);
done:
    free(t);
    if (st != SRLM_OK && root) {
        char ignored[2048];
        (void)srlm_remove_tree_quiet(tmp, ignored, sizeof ignored); /* a half-written DIR.tmp is of no use */
        srlm_error_context("saving the model to %s", final);
    }
    return st;
}
