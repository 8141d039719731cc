#include "io/checkpoint.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/fsutil.h"

#define INDEX_NAME  "model.safetensors.index.json"
#define SINGLE_NAME "model.safetensors"

typedef struct { const char *name; int file; } name_file;

static int cmp_name_file(const void *a, const void *b) {
    return strcmp(((const name_file *)a)->name, ((const name_file *)b)->name);
}

/* Open the shard `file` (a plain name in the folder) unless it is already open;
 * its slot in ck->files goes to *idx. */
static srlm_status open_shard(srlm_checkpoint *ck, const char *index_path, const char *file,
                              const char *tensor, int *idx) {
    char path[1024];
    for (int i = 0; i < ck->n_files; i++) {
        const char *slash = strrchr(ck->files[i].path, '/');
        if (!strcmp(slash ? slash + 1 : ck->files[i].path, file)) { *idx = i; return SRLM_OK; }
    }
    if (!*file || strchr(file, '/') || !strcmp(file, ".") || !strcmp(file, ".."))
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: tensor '%s' maps to \"%s\"; expected a file name in the folder",
                        index_path, tensor, file);
    SRLM_CHECK(srlm_path_join(path, sizeof path, ck->dir, file));
    if (!srlm_path_exists(path))
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: tensor '%s' is in shard %s, but %s does not exist", index_path,
                        tensor, file, path);
    SRLM_CHECK(srlm_st_open(&ck->files[ck->n_files], path));
    *idx = ck->n_files++;
    return SRLM_OK;
}

/* model.safetensors.index.json: {"metadata": {...}, "weight_map": {tensor: shard}}. */
static srlm_status open_index(srlm_checkpoint *ck, const char *index_path) {
    srlm_status s = SRLM_OK;
    cJSON *root = NULL;
    SRLM_CHECK(srlm_json_read_file(index_path, &root));
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!map || !cJSON_IsObject(map)) {
        s = SRLM_ERR(SRLM_BAD_INPUT, "%s: expected an object \"weight_map\" (tensor name -> shard file), %s",
                     index_path, map ? "found another type" : "found none");
        goto done;
    }
    int n = cJSON_GetArraySize(map);
    if (n == 0) {
        s = SRLM_ERR(SRLM_BAD_INPUT, "%s: \"weight_map\" is empty; expected at least one tensor", index_path);
        goto done;
    }
    /* At most one shard per entry. */
    ck->files = calloc((size_t)n, sizeof *ck->files);
    if (!ck->files) {
        s = SRLM_ERR(SRLM_FAILED, "out of memory reading %s", index_path);
        goto done;
    }
    for (const cJSON *e = map->child; e; e = e->next) {
        int idx = -1;
        if (!cJSON_IsString(e)) {
            s = SRLM_ERR(SRLM_BAD_INPUT, "%s: weight_map[\"%s\"]: expected a shard file name (a string)",
                         index_path, e->string);
            goto done;
        }
        SRLM_CHECK_GOTO(open_shard(ck, index_path, e->valuestring, e->string, &idx), s, done);
        if (!srlm_st_find(&ck->files[idx], e->string)) {
            s = SRLM_ERR(SRLM_BAD_INPUT, "%s lists tensor '%s' in %s, but %s has no such tensor", index_path,
                         e->string, e->valuestring, ck->files[idx].path);
            goto done;
        }
    }
done:
    cJSON_Delete(root);
    return s;
}

/* A tensor in two files would make lookups depend on file order: refuse it. */
static srlm_status check_unique(const srlm_checkpoint *ck) {
    size_t total = 0;
    for (int i = 0; i < ck->n_files; i++) total += (size_t)ck->files[i].n_tensors;
    if (ck->n_files < 2 || total == 0) return SRLM_OK;
    name_file *all = malloc(total * sizeof *all);
    if (!all) return SRLM_ERR(SRLM_FAILED, "out of memory checking %s", ck->dir);
    size_t k = 0;
    for (int i = 0; i < ck->n_files; i++)
        for (int j = 0; j < ck->files[i].n_tensors; j++) all[k++] = (name_file){ck->files[i].tensors[j].name, i};
    qsort(all, total, sizeof *all, cmp_name_file);
    srlm_status s = SRLM_OK;
    for (size_t i = 1; i < total && s == SRLM_OK; i++)
        if (!strcmp(all[i - 1].name, all[i].name))
            s = SRLM_ERR(SRLM_BAD_INPUT, "%s: tensor '%s' is in both %s and %s; expected it in one shard",
                         ck->dir, all[i].name, ck->files[all[i - 1].file].path, ck->files[all[i].file].path);
    free(all);
    return s;
}

srlm_status srlm_ckpt_open(srlm_checkpoint *ck, const char *dir) {
    srlm_status s = SRLM_OK;
    char path[1024];
    struct stat sb;
    memset(ck, 0, sizeof *ck);
    if (strlen(dir) >= sizeof ck->dir) return SRLM_ERR(SRLM_BAD_INPUT, "path too long: %s", dir);
    snprintf(ck->dir, sizeof ck->dir, "%s", dir);
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: not a folder; expected a Hugging Face model folder "
                        "(config.json + model.safetensors)", dir);

    SRLM_CHECK_GOTO(srlm_path_join(path, sizeof path, dir, "config.json"), s, fail);
    SRLM_CHECK_GOTO(srlm_hf_config_load(path, &ck->config), s, fail);

    SRLM_CHECK_GOTO(srlm_path_join(path, sizeof path, dir, INDEX_NAME), s, fail);
    if (srlm_path_exists(path)) {
        SRLM_CHECK_GOTO(open_index(ck, path), s, fail);
        SRLM_CHECK_GOTO(check_unique(ck), s, fail);
        return SRLM_OK;
    }
    SRLM_CHECK_GOTO(srlm_path_join(path, sizeof path, dir, SINGLE_NAME), s, fail);
    if (!srlm_path_exists(path)) {
        s = SRLM_ERR(SRLM_BAD_INPUT, "%s: found neither %s nor %s", dir, SINGLE_NAME, INDEX_NAME);
        goto fail;
    }
    ck->files = calloc(1, sizeof *ck->files);
    if (!ck->files) {
        s = SRLM_ERR(SRLM_FAILED, "out of memory opening %s", dir);
        goto fail;
    }
    SRLM_CHECK_GOTO(srlm_st_open(&ck->files[0], path), s, fail);
    ck->n_files = 1;
    return SRLM_OK;
fail:
    srlm_ckpt_close(ck);
    return s;
}

void srlm_ckpt_close(srlm_checkpoint *ck) {
    for (int i = 0; i < ck->n_files; i++) srlm_st_close(&ck->files[i]);
    free(ck->files);
    ck->files = NULL;
    ck->n_files = 0;
}

static const srlm_st_tensor *find_exact(const srlm_checkpoint *ck, const char *name) {
    for (int i = 0; i < ck->n_files; i++) {
        const srlm_st_tensor *t = srlm_st_find(&ck->files[i], name);
        if (t) return t;
    }
    return NULL;
}

const srlm_st_tensor *srlm_ckpt_find(const srlm_checkpoint *ck, const char *name) {
    const srlm_st_tensor *t = find_exact(ck, name);
    if (!t && ck->config.tie_word_embeddings && !strcmp(name, "lm_head.weight"))
        t = find_exact(ck, "model.embed_tokens.weight");
    return t;
}

const char *srlm_ckpt_tensor_file(const srlm_checkpoint *ck, const srlm_st_tensor *t) {
    for (int i = 0; i < ck->n_files; i++)
        if (t >= ck->files[i].tensors && t < ck->files[i].tensors + ck->files[i].n_tensors)
            return ck->files[i].path;
    return ck->dir;
}

/* Find `name` and check it has the shape the caller expects. */
static srlm_status find_shaped(const srlm_checkpoint *ck, const char *name, int64_t rows, int64_t cols,
                               const srlm_st_tensor **out) {
    char want[64], got[128];
    int64_t shape[2] = {rows, cols};
    srlm_st_shape_str(cols == 1 ? 1 : 2, shape, want, sizeof want);
    const srlm_st_tensor *t = srlm_ckpt_find(ck, name);
    if (!t) {
        const char *where = ck->n_files == 1 ? ck->files[0].path : "the shards of " INDEX_NAME;
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: tensor '%s' (expected shape %s) is missing from %s%s", ck->dir,
                        name, want, where,
                        !strcmp(name, "lm_head.weight") && !ck->config.tie_word_embeddings
                            ? " (and config.json has tie_word_embeddings false)" : "");
    }
    int ok = (t->ndim == 2 && t->shape[0] == rows && t->shape[1] == cols) ||
             (t->ndim == 1 && cols == 1 && t->shape[0] == rows);
    if (!ok) {
        srlm_st_shape_str(t->ndim, t->shape, got, sizeof got);
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: tensor '%s': expected shape %s, found %s", srlm_ckpt_tensor_file(ck, t),
                        name, want, got);
    }
    *out = t;
    return SRLM_OK;
}

srlm_status srlm_ckpt_check_shape(const srlm_checkpoint *ck, const char *name, int64_t rows, int64_t cols) {
    const srlm_st_tensor *t;
    return find_shaped(ck, name, rows, cols, &t);
}

srlm_status srlm_ckpt_read_rows(const srlm_checkpoint *ck, const char *name, int64_t rows, int64_t cols,
                                int64_t r0, int64_t r1, float *dst) {
    const srlm_st_tensor *t;
    if (rows < 0 || cols < 1 || r0 < 0 || r1 < r0 || r1 > rows)
        return SRLM_ERR(SRLM_FAILED, "reading tensor '%s': bad row range [%lld, %lld) of %lld x %lld", name,
                        (long long)r0, (long long)r1, (long long)rows, (long long)cols);
    SRLM_CHECK(find_shaped(ck, name, rows, cols, &t));
    /* The header check guarantees rows*cols*size fits, so these products cannot overflow. */
    size_t es = srlm_dtype_size(t->dtype);
    const char *src = (const char *)t->data + (size_t)r0 * (size_t)cols * es;
    srlm_st_to_f32(dst, src, t->dtype, (size_t)(r1 - r0) * (size_t)cols);
    return SRLM_OK;
}

srlm_status srlm_ckpt_read_cols(const srlm_checkpoint *ck, const char *name, int64_t rows, int64_t cols,
                                int64_t c0, int64_t c1, float *dst) {
    const srlm_st_tensor *t;
    if (rows < 0 || cols < 1 || c0 < 0 || c1 < c0 || c1 > cols)
        return SRLM_ERR(SRLM_FAILED, "reading tensor '%s': bad column range [%lld, %lld) of %lld x %lld", name,
                        (long long)c0, (long long)c1, (long long)rows, (long long)cols);
    SRLM_CHECK(find_shaped(ck, name, rows, cols, &t));
    size_t es = srlm_dtype_size(t->dtype), w = (size_t)(c1 - c0);
    for (int64_t r = 0; r < rows; r++) {
        const char *src = (const char *)t->data + ((size_t)r * (size_t)cols + (size_t)c0) * es;
        srlm_st_to_f32(dst + (size_t)r * w, src, t->dtype, w);
    }
    return SRLM_OK;
}
