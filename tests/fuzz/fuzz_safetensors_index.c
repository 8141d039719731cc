/* A sharded checkpoint's model.safetensors.index.json (srlm_ckpt_open). The
 * folder is made once per process: a valid config.json and three small shards,
 *   model-00001-of-00002.safetensors  a, b
 *   model-00002-of-00002.safetensors  c, d
 *   model-dup.safetensors             a        (a tensor in two shards)
 * and every input becomes the index. Invariants of a folder that opened: every
 * tensor of every opened shard is found by name, lives in a file of the folder,
 * and a 2-D tensor's rows and columns read back; a failure is SRLM_BAD_INPUT
 * with a message naming the folder or one of its files. */
#include "fuzz_util.h"
#include "io/checkpoint.h"
#include "io/fsutil.h"

static char g_dir[600], g_index[700];

static const char CONFIG[] =
    "{\"vocab_size\": 4, \"hidden_size\": 8, \"intermediate_size\": 16, \"num_hidden_layers\": 1,\n"
    " \"num_attention_heads\": 2, \"num_key_value_heads\": 1, \"torch_dtype\": \"float32\"}\n";

static void write_shard(const char *name, const char *const *tensors, int n) {
    char path[800];
    float x[12];
    for (int i = 0; i < 12; i++) x[i] = (float)i - 5.5f;
    const int64_t shape[2] = {3, 4};
    srlm_st_writer *w = NULL;
    if (srlm_st_writer_new(&w) != SRLM_OK) abort();
    for (int i = 0; i < n; i++)
        if (srlm_st_writer_add(w, tensors[i], i % 2 ? SRLM_BF16 : SRLM_F32, 2, shape, x) != SRLM_OK) abort();
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    if (srlm_st_writer_write(w, path) != SRLM_OK) {
        fprintf(stderr, "%s\n", srlm_last_error());
        abort();
    }
    srlm_st_writer_free(w);
}

static void setup(void) {
    char path[800];
    fuzz_path(g_dir, sizeof g_dir, "ckpt");
    if (srlm_mkdir_p(g_dir) != SRLM_OK) abort();
    snprintf(path, sizeof path, "%s/config.json", g_dir);
    fuzz_write_file(path, (const uint8_t *)CONFIG, sizeof CONFIG - 1);
    static const char *const s1[] = {"a", "b"}, *const s2[] = {"c", "d"}, *const s3[] = {"a"};
    write_shard("model-00001-of-00002.safetensors", s1, 2);
    write_shard("model-00002-of-00002.safetensors", s2, 2);
    write_shard("model-dup.safetensors", s3, 1);
    snprintf(g_index, sizeof g_index, "%s/model.safetensors.index.json", g_dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_dir[0]) setup();
    fuzz_write_file(g_index, data, size);
    srlm_checkpoint ck;
    srlm_clear_error();
    srlm_status s = srlm_ckpt_open(&ck, g_dir);
    if (s != SRLM_OK) {
        fuzz_check_failure(s, g_dir);
        FUZZ_CHECK(s == SRLM_BAD_INPUT, "a bad index gave status %d: %s", (int)s, srlm_last_error());
        FUZZ_CHECK(ck.files == NULL && ck.n_files == 0, "a failed open left files behind");
        return 0;
    }
    FUZZ_CHECK(ck.n_files >= 1 && ck.n_files <= 3, "%d files open", ck.n_files);
    for (int i = 0; i < ck.n_files; i++) {
        FUZZ_CHECK(!strncmp(ck.files[i].path, g_dir, strlen(g_dir)) && ck.files[i].path[strlen(g_dir)] == '/' &&
                       !strchr(ck.files[i].path + strlen(g_dir) + 1, '/'),
                   "opened %s outside the folder", ck.files[i].path);
        for (int j = 0; j < i; j++)
            FUZZ_CHECK(strcmp(ck.files[i].path, ck.files[j].path) != 0, "%s opened twice", ck.files[i].path);
        for (int j = 0; j < ck.files[i].n_tensors; j++) {
            const srlm_st_tensor *t = &ck.files[i].tensors[j];
            FUZZ_CHECK(srlm_ckpt_find(&ck, t->name) == t, "tensor '%s' not found (or found twice)", t->name);
            FUZZ_CHECK(!strcmp(srlm_ckpt_tensor_file(&ck, t), ck.files[i].path), "tensor '%s' file", t->name);
            float rows[12], cols[12];
            FUZZ_CHECK(srlm_ckpt_read_rows(&ck, t->name, 3, 4, 0, 3, rows) == SRLM_OK, "%s", srlm_last_error());
            FUZZ_CHECK(srlm_ckpt_read_cols(&ck, t->name, 3, 4, 1, 3, cols) == SRLM_OK, "%s", srlm_last_error());
            for (int r = 0; r < 3; r++)
                for (int c = 1; c < 3; c++)
                    FUZZ_CHECK(cols[r * 2 + c - 1] == rows[r * 4 + c], "rows and columns of '%s' disagree", t->name);
        }
    }
    FUZZ_CHECK(srlm_ckpt_find(&ck, "lm_head.weight") == NULL, "a tensor that no shard has");
    srlm_ckpt_close(&ck);
    return 0;
}
