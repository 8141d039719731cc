/* Trainer state files: a bitwise round trip (moments including NaN/-0/denormal
 * bit patterns, uint64 values above 2^53, the loss-spike window's doubles and
 * bad-step count; files without those keys read as 0), peek, and every refusal: another n,
 * another tp, another kind, another rank's file, a missing, truncated or corrupt
 * file; a failed load leaves the caller's buffers untouched. */
#include <stdint.h>
#include <string.h>

#include "io/fsutil.h"
#include "train/train_state.h"
#include "test.h"

static char g_dir[900];

#define CHECK_FAILS(expr, want)                                                                   \
    do {                                                                                          \
        srlm_status s_ = (expr);                                                                  \
        CHECK_MSG(s_ == SRLM_BAD_INPUT && strstr(srlm_last_error(), (want)),                      \
                  "status %d, message '%s', wanted '%s'", (int)s_, srlm_last_error(), (want));    \
    } while (0)

static srlm_train_state sample_state(void) {
    srlm_train_state s;
    memset(&s, 0, sizeof s);
    s.step = 123456789012L;
    s.total_steps = 987654321098L;
    s.data_epoch = 3;
    s.data_pos = 4242;
    s.rng_key = 0xfedcba9876543211ull;     /* above 2^53: a double would round it */
    s.rng_counter = (1ull << 53) + 1;
    s.config_hash = UINT64_MAX;
    s.tp = 2;
    s.dp = 3;
    s.rank = 5;
    snprintf(s.kind, sizeof s.kind, "dpo");
    s.bad_in_row = 2;
    const double losses[] = {0.1, 1e-300, 12345.678901234567, 3.0000000000000004, 2.5e300, 7};
    s.n_recent = (int)(sizeof losses / sizeof losses[0]);
    memcpy(s.recent_loss, losses, sizeof losses);
    return s;
}

static int same_state(const srlm_train_state *a, const srlm_train_state *b) {
    return a->step == b->step && a->total_steps == b->total_steps && a->data_epoch == b->data_epoch &&
           a->data_pos == b->data_pos && a->rng_key == b->rng_key && a->rng_counter == b->rng_counter &&
           a->config_hash == b->config_hash && a->tp == b->tp && a->dp == b->dp && a->rank == b->rank &&
           !strcmp(a->kind, b->kind) && a->bad_in_row == b->bad_in_row && a->n_recent == b->n_recent &&
           !memcmp(a->recent_loss, b->recent_loss, sizeof(double) * (size_t)a->n_recent);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "%s/test_train_state/ckpt-000100", test_env("SRLM_TMP", "/tmp"));
    enum { N = 1000 };
    float *m = malloc(N * sizeof(float)), *v = malloc(N * sizeof(float));
    float *m2 = malloc(N * sizeof(float)), *v2 = malloc(N * sizeof(float));
    for (int i = 0; i < N; i++) {
        uint32_t a = 0x9e3779b9u * (uint32_t)(i + 1), b = a ^ 0x5bd1e995u;
        memcpy(&m[i], &a, 4); /* arbitrary bit patterns, NaNs included */
        memcpy(&v[i], &b, 4);
    }
    uint32_t special[3] = {0x80000000u, 0x00000001u, 0x7fc00001u}; /* -0, denormal, NaN payload */
    memcpy(m, special, sizeof special);

    srlm_train_state s = sample_state(), got;
    CHECK_OK(srlm_train_state_save(g_dir, &s, m, v, N));
    char path[1200];
    CHECK_OK(srlm_train_state_path(path, sizeof path, g_dir, 5));
    CHECK(strstr(path, "/trainer-state-rank-5.safetensors") != NULL);
    CHECK(srlm_path_exists(path));

    /* round trip, bitwise */
    memset(&got, 0, sizeof got);
    got.tp = 2;
    CHECK_OK(srlm_train_state_load(g_dir, 5, "dpo", &got, m2, v2, N));
    CHECK(same_state(&got, &s));
    CHECK(!memcmp(m, m2, N * sizeof(float)) && !memcmp(v, v2, N * sizeof(float)));

    /* peek: the state and shard size without a run to check against */
    size_t n = 0;
    memset(&got, 0, sizeof got);
    CHECK_OK(srlm_train_state_peek(g_dir, 5, &got, &n));
    CHECK(n == N && same_state(&got, &s));

    /* refusals; the buffers stay untouched */
    memset(m2, 0x5a, N * sizeof(float));
    got.tp = 2;
    CHECK_FAILS(srlm_train_state_load(g_dir, 5, "dpo", &got, m2, v2, N - 1),
                "optimizer shard has 1000 elements; expected 999");
    got.tp = 4;
    CHECK_FAILS(srlm_train_state_load(g_dir, 5, "dpo", &got, m2, v2, N), "written with tp=2; this run has tp=4");
    got.tp = 2;
    CHECK_FAILS(srlm_train_state_load(g_dir, 5, "sft", &got, m2, v2, N), "trainer state of a dpo run; this run is sft");
    CHECK_FAILS(srlm_train_state_load(g_dir, 4, "dpo", &got, m2, v2, N), "trainer-state-rank-4.safetensors");
    CHECK(got.tp == 2);
    int untouched = 1;
    for (int i = 0; i < N; i++) {
        uint32_t u;
        memcpy(&u, &m2[i], 4);
        if (u != 0x5a5a5a5au) untouched = 0;
    }
    CHECK(untouched);

    /* another rank's file renamed into place */
    char other[1200];
    CHECK_OK(srlm_train_state_path(other, sizeof other, g_dir, 1));
    {
        size_t len = 0;
        FILE *f = fopen(path, "rb");
        fseek(f, 0, SEEK_END);
        len = (size_t)ftell(f);
        fseek(f, 0, SEEK_SET);
        char *bytes = malloc(len);
        CHECK(fread(bytes, 1, len, f) == len);
        fclose(f);
        CHECK_OK(srlm_write_file_atomic(other, bytes, len));
        CHECK_FAILS(srlm_train_state_load(g_dir, 1, "dpo", &got, m2, v2, N), "the file says rank 5");

        /* truncated: the data area is short */
        CHECK_OK(srlm_write_file_atomic(other, bytes, len - 7));
        CHECK_FAILS(srlm_train_state_load(g_dir, 1, "dpo", &got, m2, v2, N), "trainer-state-rank-1.safetensors");
        /* truncated inside the header */
        CHECK_OK(srlm_write_file_atomic(other, bytes, 40));
        CHECK_FAILS(srlm_train_state_load(g_dir, 1, "dpo", &got, m2, v2, N), "trainer-state-rank-1.safetensors");
        /* a corrupt number in the metadata */
        char *p = strstr(bytes + 8, "\"srlm.rng_key\":\"");
        CHECK(p != NULL);
        if (p) {
            p[strlen("\"srlm.rng_key\":\"")] = 'x';
            CHECK_OK(srlm_write_file_atomic(other, bytes, len));
            CHECK_FAILS(srlm_train_state_load(g_dir, 1, "dpo", &got, m2, v2, N),
                        "\"srlm.rng_key\": expected an unsigned 64-bit integer");
            p[strlen("\"srlm.rng_key\":\"")] = '1';
        }
        /* the loss-spike keys: optional (a file of an earlier srlm has neither),
         * but a malformed window is refused */
        char *own = strstr(bytes + 8, "\"srlm.rank\":\"5\"");
        char *q = strstr(bytes + 8, "\"srlm.bad_in_row\"");
        char *r = strstr(bytes + 8, "\"srlm.recent_losses\":\"0.1");
        CHECK(own && q && r);
        if (own && q && r) {
            own[strlen("\"srlm.rank\":\"")] = '1'; /* this copy is rank 1's file */
            q[2] = 'X';                              /* "sXlm.bad_in_row": an unknown key, ignored */
            r[2] = 'X';
            CHECK_OK(srlm_write_file_atomic(other, bytes, len));
            memset(&got, 0, sizeof got);
            got.tp = 2;
            CHECK_OK(srlm_train_state_load(g_dir, 1, "dpo", &got, m2, v2, N));
            CHECK(got.bad_in_row == 0 && got.n_recent == 0 && got.step == s.step);
            r[2] = 'r';
            r[strlen("\"srlm.recent_losses\":\"0.1")] = ';';
            CHECK_OK(srlm_write_file_atomic(other, bytes, len));
            CHECK_FAILS(srlm_train_state_load(g_dir, 1, "dpo", &got, m2, v2, N),
                        "\"srlm.recent_losses\": expected at most 1000 finite numbers separated by commas");
        }
        free(bytes);
    }
    /* a model file is not a trainer state */
    char model[1200];
    snprintf(model, sizeof model, "%s/llama/tiny-rope/model.safetensors", test_env("SRLM_FIXTURES", "tests/fixtures"));
    {
        size_t len;
        FILE *f = fopen(model, "rb");
        CHECK(f != NULL);
        if (f) {
            fseek(f, 0, SEEK_END);
            len = (size_t)ftell(f);
            fseek(f, 0, SEEK_SET);
            char *bytes = malloc(len);
            CHECK(fread(bytes, 1, len, f) == len);
            fclose(f);
            CHECK_OK(srlm_write_file_atomic(other, bytes, len));
            CHECK_FAILS(srlm_train_state_load(g_dir, 1, "dpo", &got, m2, v2, N), "trainer-state-rank-1.safetensors");
            free(bytes);
        }
    }

    /* saving refuses nonsense and overwrites atomically */
    srlm_train_state bad = s;
    snprintf(bad.kind, sizeof bad.kind, "ppo");
    CHECK(srlm_train_state_save(g_dir, &bad, m, v, N) == SRLM_FAILED);
    bad = s;
    bad.rank = 6; /* tp * dp = 6 */
    CHECK(srlm_train_state_save(g_dir, &bad, m, v, N) == SRLM_FAILED);
    s.step++;
    CHECK_OK(srlm_train_state_save(g_dir, &s, m, v, N));
    got.tp = 2;
    CHECK_OK(srlm_train_state_load(g_dir, 5, "dpo", &got, m2, v2, N));
    CHECK(got.step == s.step);

    /* an empty shard (a rank that holds no optimizer state) */
    s.rank = 0;
    snprintf(s.kind, sizeof s.kind, "sft");
    CHECK_OK(srlm_train_state_save(g_dir, &s, m, v, 0));
    CHECK_OK(srlm_train_state_load(g_dir, 0, "sft", &got, m2, v2, 0));
    CHECK(same_state(&got, &s));

    free(m), free(v), free(m2), free(v2);
    TEST_DONE();
}
