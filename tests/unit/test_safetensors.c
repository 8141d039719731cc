/* safetensors reader and writer: round trips (bitwise for F32, torch's rounding
 * for BF16/F16), the on-disk layout, and every kind of lying header giving
 * SRLM_BAD_INPUT with a message that names the file and the problem. */
#include <dirent.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "io/fsutil.h"
#include "io/safetensors.h"
#include "test.h"

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

static char g_dir[900];

/* Deterministic values with full 23-bit mantissas, so rounding to 16 bits matters. */
static void fill(float *x, size_t n, uint32_t seed) {
    uint32_t s = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = ((float)(s >> 8) / 16777216.0f - 0.5f) * 6.0f;
    }
    if (n > 3) { x[0] = 0.0f; x[1] = -1.0f / 3.0f; x[2] = 65504.0f; }
}

static void path_in_dir(char *out, size_t cap, const char *name) {
    snprintf(out, cap, "%s/%s", g_dir, name);
}

/* Write a file by hand: 8-byte length (`declared`, or the real one when < 0), header, `data_len` bytes. */
static void write_raw(const char *path, const char *header, long long declared, size_t data_len) {
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); exit(1); }
    uint64_t n = declared < 0 ? strlen(header) : (uint64_t)declared;
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)(n >> (8 * i));
    fwrite(len8, 1, 8, f);
    fwrite(header, 1, strlen(header), f);
    for (size_t i = 0; i < data_len; i++) fputc((int)(i * 7 & 0xff), f);
    fclose(f);
}

static void test_round_trip(void) {
    char path[1024];
    path_in_dir(path, sizeof path, "round_trip.safetensors");
    const int64_t s_a[2] = {5, 7}, s_b[3] = {3, 4, 5}, s_c[1] = {33}, s_d[4] = {2, 1, 3, 2}, s_e[2] = {0, 4};
    float a[35], b[60], c[33], d[12];
    fill(a, 35, 1); fill(b, 60, 2); fill(c, 33, 3); fill(d, 12, 4);

    srlm_st_writer *w = NULL;
    CHECK_OK(srlm_st_writer_new(&w));
    /* Added out of name order: the reader must still find them (it sorts). */
    CHECK_OK(srlm_st_writer_add(w, "z.f32", SRLM_F32, 2, s_a, a));
    CHECK_OK(srlm_st_writer_add(w, "b.bf16", SRLM_BF16, 3, s_b, b));
    CHECK_OK(srlm_st_writer_add(w, "c.f16 \"quoted\"", SRLM_F16, 1, s_c, c)); /* odd length: next starts unaligned */
    CHECK_OK(srlm_st_writer_add(w, "a.4d", SRLM_BF16, 4, s_d, d));
    CHECK_OK(srlm_st_writer_add(w, "empty", SRLM_F32, 2, s_e, a));
    CHECK(srlm_st_writer_data_bytes(w) == 35 * 4 + 60 * 2 + 33 * 2 + 12 * 2);
    /* Writer refusals. */
    CHECK(srlm_st_writer_add(w, "z.f32", SRLM_F32, 2, s_a, a) == SRLM_BAD_INPUT);
    CHECK(srlm_st_writer_add(w, "scalar", SRLM_F32, 0, s_a, a) == SRLM_BAD_INPUT);
    CHECK(srlm_st_writer_add(w, "", SRLM_F32, 1, s_c, c) == SRLM_BAD_INPUT);
    CHECK(srlm_st_writer_add(w, "__metadata__", SRLM_F32, 1, s_c, c) == SRLM_BAD_INPUT);
    CHECK_OK(srlm_st_writer_write(w, path));
    srlm_st_writer_free(w);

    /* Layout: little-endian length, 8-aligned data area, metadata. */
    FILE *f = fopen(path, "rb");
    unsigned char head[4096];
    size_t got = f ? fread(head, 1, sizeof head, f) : 0;
    if (f) fclose(f);
    CHECK(got > 8);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | head[i];
    CHECK(hlen % 8 == 0 && hlen + 8 <= got);
    head[8 + hlen < sizeof head ? 8 + hlen : sizeof head - 1] = '\0';
    CHECK(strstr((char *)head + 8, "\"__metadata__\":{\"format\":\"pt\"}") != NULL);

    srlm_safetensors st;
    CHECK_OK(srlm_st_open(&st, path));
    CHECK(st.n_tensors == 5);
    for (int i = 1; i < st.n_tensors; i++) CHECK(strcmp(st.tensors[i - 1].name, st.tensors[i].name) < 0);
    CHECK(srlm_st_find(&st, "missing") == NULL);

    const srlm_st_tensor *t = srlm_st_find(&st, "z.f32");
    CHECK(t && t->dtype == SRLM_F32 && t->ndim == 2 && t->shape[0] == 5 && t->shape[1] == 7 && t->nbytes == 140);
    if (t) CHECK(memcmp(t->data, a, sizeof a) == 0); /* bitwise */

    t = srlm_st_find(&st, "b.bf16");
    CHECK(t && t->dtype == SRLM_BF16 && t->ndim == 3 && t->shape[2] == 5 && t->nbytes == 120);
    if (t) {
        float back[60];
        srlm_st_to_f32(back, t->data, t->dtype, 60);
        int bad = 0;
        for (int i = 0; i < 60; i++) {
            uint16_t raw;
            memcpy(&raw, (const char *)t->data + 2 * i, 2);
            bad += raw != srlm_f32_to_bf16(b[i]) || back[i] != srlm_bf16_to_f32(srlm_f32_to_bf16(b[i]));
        }
        CHECK_MSG(bad == 0, "%d bf16 values differ", bad);
    }
    t = srlm_st_find(&st, "c.f16 \"quoted\"");
    CHECK(t && t->dtype == SRLM_F16 && t->ndim == 1 && t->shape[0] == 33);
    if (t) {
        float back[33];
        srlm_st_to_f32(back, t->data, t->dtype, 33);
        int bad = 0;
        for (int i = 0; i < 33; i++) bad += back[i] != srlm_f16_to_f32(srlm_f32_to_f16(c[i]));
        CHECK_MSG(bad == 0, "%d f16 values differ", bad);
        CHECK(back[2] == 65504.0f);
    }
    t = srlm_st_find(&st, "a.4d");
    CHECK(t && t->ndim == 4 && t->shape[0] == 2 && t->shape[1] == 1 && t->shape[2] == 3 && t->shape[3] == 2);
    if (t) {
        /* After the 66-byte f16 tensor this one starts at an address that is only
         * 2-aligned; read it also from a deliberately odd address. */
        float back[12], odd_back[12];
        unsigned char buf[2 * 12 + 1];
        memcpy(buf + 1, t->data, 24);
        srlm_st_to_f32(back, t->data, t->dtype, 12);
        srlm_st_to_f32(odd_back, buf + 1, t->dtype, 12);
        int bad = 0;
        for (int i = 0; i < 12; i++)
            bad += back[i] != srlm_bf16_to_f32(srlm_f32_to_bf16(d[i])) || odd_back[i] != back[i];
        CHECK_MSG(bad == 0, "%d 4-d/unaligned values differ", bad);
    }
    t = srlm_st_find(&st, "empty");
    CHECK(t && t->nbytes == 0 && srlm_st_numel(t) == 0);
    srlm_st_close(&st);
    srlm_st_close(&st); /* harmless twice */

    /* The atomic write left no temporary file behind. */
    DIR *dir = opendir(g_dir);
    struct dirent *de;
    int stray = 0;
    while (dir && (de = readdir(dir)))
        if (strstr(de->d_name, ".tmp-")) stray++;
    if (dir) closedir(dir);
    CHECK(stray == 0);
}

typedef struct {
    const char *header;
    long long   declared; /* header length to write; -1 = the real one */
    size_t      data_len;
    const char *phrase;   /* must appear in the message */
} bad_case;

static void test_bad_headers(void) {
    static const bad_case cases[] = {
        {"{\"a\":", -1, 0, "not valid JSON"},
        {"{} trailing", -1, 0, "not valid JSON"},
        {"", -1, 0, "not valid JSON"},
        {"[1, 2]", -1, 0, "not a JSON object"},
        {"{\"x\": 3}", -1, 0, "expected an object"},
        {"{\"x\": {\"shape\": [2], \"data_offsets\": [0, 8]}}", -1, 8, "no \"dtype\""},
        {"{\"x\": {\"dtype\": \"F32\", \"data_offsets\": [0, 8]}}", -1, 8, "no \"shape\""},
        {"{\"x\": {\"dtype\": \"F32\", \"shape\": [2]}}", -1, 8, "no \"data_offsets\""},
        {"{\"x\": {\"dtype\": 5, \"shape\": [2], \"data_offsets\": [0, 8]}}", -1, 8, "\"dtype\" must be a string"},
        {"{\"x\": {\"dtype\": \"I64\", \"shape\": [1], \"data_offsets\": [0, 8]}}", -1, 8, "unsupported dtype 'I64'"},
        {"{\"x\": {\"dtype\": \"F32\", \"shape\": 2, \"data_offsets\": [0, 8]}}", -1, 8, "\"shape\" must be an array"},
        {"{\"x\": {\"dtype\": \"F32\", \"shape\": [-2], \"data_offsets\": [0, 8]}}", -1, 8, "found -2"},
        {"{\"x\": {\"dtype\": \"F32\", \"shape\": [2.5], \"data_offsets\": [0, 8]}}", -1, 8, "found 2.5"},
        {"{\"x\": {\"dtype\": \"F32\", \"shape\": [\"2\"], \"data_offsets\": [0, 8]}}", -1, 8, "found \"2\""},
        {"{\"x\": {\"dtype\": \"F32\", \"shape\": [], \"data_offsets\": [0, 4]}}", -1, 4, "0-d"},
        {"{\"x\": {\"dtype\": \"F32\", \"shape\": [1,1,1,1,2], \"data_offsets\": [0, 8]}}", -1, 8, "5 dimensions"},
        {"{\"x\": {\"dtype\": \"F32\", \"shape\": [4503599627370496, 4503599627370496], \"data_offsets\": [0, 8]}}",
         -1, 8, "too large"},
        {"{\"x\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0]}}", -1, 8, "must be [begin, end]"},
        {"{\"x\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": \"0-8\"}}", -1, 8, "must be [begin, end]"},
        {"{\"x\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, -8]}}", -1, 8, "must be [begin, end]"},
        {"{\"x\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [8, 0]}}", -1, 8, "end before"},
        {"{\"x\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]}}", -1, 8, "outside the data area"},
        {"{\"x\": {\"dtype\": \"F32\", \"shape\": [2, 3], \"data_offsets\": [0, 20]}}", -1, 24, "needs 24 bytes"},
        {"{\"x\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
         " \"y\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}", -1, 12, "overlap"},
        {"{\"x\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
         " \"x\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [8, 16]}}", -1, 16, "more than once"},
        {"{\"__metadata__\": [1], \"x\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", -1, 8,
         "\"__metadata__\" must be an object"},
        /* cJSON keeps a repeated key (lookups see the first) and cuts a string at \u0000 */
        {"{\"x\": {\"dtype\": \"F32\", \"dtype\": \"F16\", \"shape\": [2], \"data_offsets\": [0, 8]}}", -1, 8,
         "key \"dtype\" appears twice in \"x\""},
        {"{\"__metadata__\": {\"format\": \"pt\", \"format\": \"np\"},"
         " \"x\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", -1, 8,
         "key \"format\" appears twice in \"__metadata__\""},
        {"{\"x\\u0000y\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", -1, 8, "\\u0000"},
        {"{}", 1000, 0, "runs past the end"},
        {"{}", (long long)0x7fffffffffffffffLL, 0, "runs past the end"},
    };
    for (int i = 0; i < COUNT(cases); i++) {
        char name[64], path[1024];
        snprintf(name, sizeof name, "bad_%02d.safetensors", i);
        path_in_dir(path, sizeof path, name);
        write_raw(path, cases[i].header, cases[i].declared, cases[i].data_len);
        srlm_safetensors st;
        srlm_clear_error();
        srlm_status s = srlm_st_open(&st, path);
        const char *msg = srlm_last_error();
        CHECK_MSG(s == SRLM_BAD_INPUT && strstr(msg, name) && strstr(msg, cases[i].phrase),
                  "case %d (%s): status %d, message '%s', wanted '%s'", i, cases[i].header, (int)s, msg,
                  cases[i].phrase);
        CHECK(st.map == NULL && st.tensors == NULL);
        srlm_st_close(&st);
    }

    /* Files too short to hold the length. */
    for (int n = 0; n < 8; n += 5) {
        char path[1024];
        path_in_dir(path, sizeof path, "short.safetensors");
        FILE *f = fopen(path, "wb");
        for (int i = 0; i < n; i++) fputc(0, f);
        fclose(f);
        srlm_safetensors st;
        srlm_status s = srlm_st_open(&st, path);
        CHECK_MSG(s == SRLM_BAD_INPUT && strstr(srlm_last_error(), "short.safetensors") &&
                      strstr(srlm_last_error(), "shorter than the 8-byte"),
                  "%d-byte file: %d '%s'", n, (int)s, srlm_last_error());
    }
    char path[1024];
    path_in_dir(path, sizeof path, "does_not_exist.safetensors");
    srlm_safetensors st;
    CHECK(srlm_st_open(&st, path) == SRLM_BAD_INPUT && strstr(srlm_last_error(), "does_not_exist"));
}

/* Truncate a valid file at every length and corrupt each header byte: the
 * answer is always OK or SRLM_BAD_INPUT, never a crash; truncations always fail. */
static void test_truncation_and_mutation(void) {
    char path[1024], bad[1024];
    path_in_dir(path, sizeof path, "victim.safetensors");
    path_in_dir(bad, sizeof bad, "victim_cut.safetensors");
    const int64_t s1[2] = {3, 2}, s2[1] = {5};
    float a[6], b[5];
    fill(a, 6, 9); fill(b, 5, 10);
    srlm_st_writer *w = NULL;
    CHECK_OK(srlm_st_writer_new(&w));
    CHECK_OK(srlm_st_writer_add(w, "w", SRLM_F32, 2, s1, a));
    CHECK_OK(srlm_st_writer_add(w, "v", SRLM_BF16, 1, s2, b));
    CHECK_OK(srlm_st_writer_write(w, path));
    srlm_st_writer_free(w);

    FILE *f = fopen(path, "rb");
    unsigned char buf[1024];
    size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (f) fclose(f);
    CHECK(n > 16 && n < sizeof buf);

    int wrong = 0;
    for (size_t cut = 0; cut < n; cut++) {
        FILE *g = fopen(bad, "wb");
        fwrite(buf, 1, cut, g);
        fclose(g);
        srlm_safetensors st;
        srlm_status s = srlm_st_open(&st, bad);
        if (s != SRLM_BAD_INPUT || !strstr(srlm_last_error(), "victim_cut")) {
            if (!wrong) fprintf(stderr, "cut at %zu: %d '%s'\n", cut, (int)s, srlm_last_error());
            wrong++;
        }
        srlm_st_close(&st);
    }
    CHECK_MSG(wrong == 0, "%d truncations not refused", wrong);

    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | buf[i];
    const unsigned char subst[] = {'x', '}', '{', '"', '9', '-', ',', ']', 0, 0xff};
    wrong = 0;
    for (size_t pos = 0; pos < 8 + hlen; pos++) {
        for (size_t k = 0; k < sizeof subst; k++) {
            unsigned char copy[1024];
            memcpy(copy, buf, n);
            copy[pos] = subst[k];
            FILE *g = fopen(bad, "wb");
            fwrite(copy, 1, n, g);
            fclose(g);
            srlm_safetensors st;
            srlm_status s = srlm_st_open(&st, bad);
            if (s == SRLM_OK) {
                /* Whatever it accepted must lie inside the mapping. */
                for (int i = 0; i < st.n_tensors; i++) {
                    const char *d = st.tensors[i].data, *m = st.map;
                    if (d < m || d + st.tensors[i].nbytes > m + st.map_size) wrong++;
                }
            } else if (s != SRLM_BAD_INPUT) {
                wrong++;
            }
            srlm_st_close(&st);
        }
    }
    CHECK_MSG(wrong == 0, "%d header mutations gave a wrong answer", wrong);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "%s/safetensors", test_env("SRLM_TMP", "/tmp/srlm-test"));
    CHECK_OK(srlm_mkdir_p(g_dir));
    test_round_trip();
    test_bad_headers();
    test_truncation_and_mutation();
    TEST_DONE();
}
