/* The checks every reader of outside JSON makes after cJSON (src/io/jsonl.h):
 * a key twice in one object (cJSON keeps both, lookups see the first) and a
 * \u0000 escape (cJSON cuts the string there) are refused, by the JSONL record
 * reader (file:line), by srlm_json_read_file (config.json, the shard index:
 * file, line and key) and by the safetensors header (test_safetensors.c). */
#include <string.h>
#include <sys/stat.h>

#include "io/hf_config.h"
#include "io/jsonl.h"
#include "test.h"

static char g_dir[1024];

static const char *write_file(const char *name, const char *text) {
    static char path[1200];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); exit(1); }
    fputs(text, f);
    fclose(f);
    return path;
}

static void test_duplicate_walk(void) {
    struct {
        const char *json, *key, *parent; /* parent: NULL = top level */
        int nth;                         /* keys of that name before the repeat */
    } cases[] = {
        {"{\"a\": 1, \"b\": 2, \"a\": 3}", "a", NULL, 1},
        {"{\"a\": {\"x\": 1, \"y\": 2, \"x\": 3}}", "x", "a", 1},
        /* document order: the nested repeat comes first */
        {"{\"x\": 0, \"a\": {\"x\": 1, \"x\": 2}, \"x\": 3}", "x", "a", 2},
        {"{\"list\": [{\"p\": 1}, {\"p\": 2, \"p\": 3}]}", "p", NULL, 2},
        {"[{\"k\": 1}, {\"k\": 2}, {\"k\": 3, \"q\": 1, \"k\": 4}]", "k", NULL, 3},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cJSON *v = cJSON_Parse(cases[i].json);
        CHECK(v != NULL);
        const cJSON *parent = NULL;
        int nth = -1;
        const cJSON *d = srlm_json_duplicate_key(v, &parent, &nth);
        CHECK_MSG(d && !strcmp(d->string, cases[i].key), "case %zu: %s", i, d ? d->string : "(none)");
        CHECK_MSG(nth == cases[i].nth, "case %zu: nth %d", i, nth);
        if (cases[i].parent) CHECK_MSG(parent && parent->string && !strcmp(parent->string, cases[i].parent),
                                       "case %zu: parent %s", i, parent && parent->string ? parent->string : "?");
        cJSON_Delete(v);
    }
    const char *fine[] = {"{}", "[]", "{\"a\": {\"a\": {\"a\": 1}}}", "[{\"a\": 1}, {\"a\": 2}]", "3", "\"s\""};
    for (size_t i = 0; i < sizeof fine / sizeof fine[0]; i++) {
        cJSON *v = cJSON_Parse(fine[i]);
        CHECK(v && srlm_json_duplicate_key(v, NULL, NULL) == NULL);
        cJSON_Delete(v);
    }
    /* a large object (the sorted path): 200 keys, the repeat at index 150 and 180 */
    cJSON *big = cJSON_CreateObject();
    char key[32];
    for (int i = 0; i < 200; i++) {
        snprintf(key, sizeof key, "k%03d", i == 150 ? 17 : i == 180 ? 3 : i);
        cJSON_AddItemToObject(big, key, cJSON_CreateNumber(i));
    }
    const cJSON *d = srlm_json_duplicate_key(big, NULL, NULL);
    CHECK_MSG(d && !strcmp(d->string, "k017") && d->valuedouble == 150, "big: %s", d ? d->string : "(none)");
    cJSON_Delete(big);
}

static void test_key_line_and_nul(void) {
    const char *text = "{\n  \"a\": \"\\\"a\\\": no\",\n  \"b\": {\"a\": 1},\n  \"a\" : 2\n}\n";
    CHECK(srlm_json_key_line(text, strlen(text), "a", 0) == 2);
    CHECK(srlm_json_key_line(text, strlen(text), "a", 1) == 3);
    CHECK(srlm_json_key_line(text, strlen(text), "a", 2) == 4);
    CHECK(srlm_json_key_line(text, strlen(text), "a", 3) == 0);
    CHECK(srlm_json_key_line(text, strlen(text), "c", 0) == 0);

    const char *nul = "{\"p\": \"ab\\u0000cd\"}";
    CHECK(srlm_json_nul_escape(nul, strlen(nul)) == 9);
    const char *escaped_backslash = "{\"p\": \"ab\\\\u0000cd\"}"; /* text: ab\u0000cd, no NUL */
    CHECK(srlm_json_nul_escape(escaped_backslash, strlen(escaped_backslash)) == -1);
    const char *other = "{\"p\": \"\\u0001\\u00000\"}";
    CHECK(srlm_json_nul_escape(other, strlen(other)) == 13);
    CHECK(srlm_json_nul_escape("{\"p\": \"\\u000a\"}", 15) == -1);
}

static void expect_jsonl_error(const char *name, const char *text, const char *phrase) {
    const char *path = write_file(name, text);
    srlm_jsonl_reader r;
    CHECK_OK(srlm_jsonl_open(&r, path));
    srlm_status st = SRLM_OK;
    int records = 0;
    for (;;) {
        cJSON *o = NULL;
        st = srlm_jsonl_next(&r, &o);
        if (st != SRLM_OK || !o) break;
        records++;
        cJSON_Delete(o);
    }
    srlm_jsonl_close(&r);
    const char *msg = srlm_last_error();
    CHECK_MSG(st == SRLM_BAD_INPUT && strstr(msg, name) && strstr(msg, phrase), "%s: status %d, '%s', wanted '%s'",
              name, (int)st, msg, phrase);
    CHECK_MSG(records == 1, "%s: %d records before the bad line", name, records);
}

static void test_jsonl(void) {
    expect_jsonl_error("dup.jsonl", "{\"prompt\": \"a\", \"response\": \"b\"}\n"
                                    "{\"prompt\": \"a\", \"response\": \"b\", \"prompt\": \"c\"}\n",
                       "dup.jsonl:2: key \"prompt\" appears twice");
    expect_jsonl_error("dup_nested.jsonl", "{\"a\": 1}\n{\"replies\": [{\"text\": \"x\", \"rank\": 0, \"rank\": 1}]}\n",
                       "dup_nested.jsonl:2: key \"rank\" appears twice");
    expect_jsonl_error("nul.jsonl", "{\"prompt\": \"a\"}\n{\"prompt\": \"a\\u0000b\", \"response\": \"c\"}\n",
                       "nul.jsonl:2:14: a string holds \\u0000");
    /* a literal backslash followed by u0000 is text, not a NUL */
    const char *path = write_file("fine.jsonl", "{\"prompt\": \"a\\\\u0000b\"}\n");
    srlm_jsonl_reader r;
    CHECK_OK(srlm_jsonl_open(&r, path));
    cJSON *o = NULL;
    CHECK_OK(srlm_jsonl_next(&r, &o));
    CHECK(o && !strcmp(cJSON_GetObjectItem(o, "prompt")->valuestring, "a\\u0000b"));
    cJSON_Delete(o);
    srlm_jsonl_close(&r);
}

static void test_json_file(void) {
    struct { const char *name, *text, *phrase; } cases[] = {
        {"dup_config.json", "{\n  \"hidden_size\": 64,\n  \"num_hidden_layers\": 2,\n  \"num_hidden_layers\": 4\n}\n",
         "dup_config.json: line 4: key \"num_hidden_layers\" appears twice"},
        {"dup_index.json", "{\"metadata\": {}, \"weight_map\": {\"a\": \"m1.safetensors\",\n \"a\": \"m2.safetensors\"}}",
         "dup_index.json: line 2: key \"a\" appears twice in \"weight_map\""},
        {"nul_config.json", "{\n\"model_type\": \"llama\\u0000x\"}", "nul_config.json: line 2: a string holds \\u0000"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *path = write_file(cases[i].name, cases[i].text);
        cJSON *root = NULL;
        srlm_status st = srlm_json_read_file(path, &root);
        CHECK_MSG(st == SRLM_BAD_INPUT && root == NULL && strstr(srlm_last_error(), cases[i].phrase),
                  "%s: status %d, '%s', wanted '%s'", cases[i].name, (int)st, srlm_last_error(), cases[i].phrase);
        cJSON_Delete(root);
    }
    /* a raw NUL byte after the object is not ignored */
    char path[1200];
    snprintf(path, sizeof path, "%s/nul_byte.json", g_dir);
    FILE *f = fopen(path, "wb");
    fwrite("{\"a\": 1}\0{\"a\": 2}", 1, 17, f);
    fclose(f);
    cJSON *root = NULL;
    srlm_status st = srlm_json_read_file(path, &root);
    CHECK_MSG(st == SRLM_BAD_INPUT && strstr(srlm_last_error(), "nul_byte.json"), "NUL byte: %d '%s'", (int)st,
              srlm_last_error());
    cJSON_Delete(root);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "%s/json_checks", test_env("SRLM_TMP", "/tmp"));
    mkdir(test_env("SRLM_TMP", "/tmp"), 0755);
    mkdir(g_dir, 0755);
    test_duplicate_walk();
    test_key_line_and_nul();
    test_jsonl();
    test_json_file();
    TEST_DONE();
}
