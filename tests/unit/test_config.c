/* The YAML config layer: defaults, file, overrides, every kind of error with
 * its FILE:LINE:COLUMN, print round-trip and the hash. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/config.h"
#include "io/yaml_schema.h"
#include "test.h"

static char g_dir[1024];

static void make_dirs(const char *path) {
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        mkdir(buf, 0755);
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "cannot create %s: %s\n", buf, strerror(errno));
        exit(1);
    }
}

/* Write `text` to SRLM_TMP/config/NAME and return the path (static buffer). */
static const char *write_yaml(const char *name, const char *text) {
    static char path[1200];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
    return path;
}

/* "FILE:LINE:COLUMN" of the first occurrence of `marker` in `text`, 1-based,
 * computed from the text itself so the test does not trust the loader. */
static void where(const char *file, const char *text, const char *marker, char *buf, size_t cap) {
    const char *at = strstr(text, marker);
    if (!at) {
        fprintf(stderr, "test bug: marker '%s' not in text\n", marker);
        exit(1);
    }
    int line = 1, col = 1;
    for (const char *p = text; p < at; p++) {
        if (*p == '\n') line++, col = 1;
        else col++;
    }
    snprintf(buf, cap, "%s:%d:%d: ", file, line, col);
}

/* Loading `text` must fail with SRLM_BAD_INPUT; the message must start with
 * the position of `marker` and contain each of the `expect` strings. */
static void expect_file_error(const char *name, const char *text, const char *marker,
                              const char *expect1, const char *expect2) {
    const char *path = write_yaml(name, text);
    char pos[1300];
    where(path, text, marker, pos, sizeof pos);
    srlm_config c;
    srlm_status st = srlm_config_load(&c, path, 0, NULL);
    const char *msg = srlm_last_error();
    CHECK_MSG(st == SRLM_BAD_INPUT, "%s: status %d", name, (int)st);
    CHECK_MSG(strncmp(msg, pos, strlen(pos)) == 0, "%s: message '%s' does not start with '%s'", name, msg, pos);
    CHECK_MSG(!expect1 || strstr(msg, expect1), "%s: message '%s' lacks '%s'", name, msg, expect1);
    CHECK_MSG(!expect2 || strstr(msg, expect2), "%s: message '%s' lacks '%s'", name, msg, expect2);
    CHECK(c.run.name == NULL && c.model.path == NULL); /* nothing left to free */
    srlm_config_free(&c);
}

static void expect_override_error(const char *override, const char *expect) {
    srlm_config c;
    char *ov[] = {"model.path=/m", (char *)override};
    srlm_status st = srlm_config_load(&c, NULL, 2, ov);
    const char *msg = srlm_last_error();
    CHECK_MSG(st == SRLM_BAD_INPUT, "override %s: status %d", override, (int)st);
    CHECK_MSG(strstr(msg, expect) != NULL, "override %s: message '%s' lacks '%s'", override, msg, expect);
    srlm_config_free(&c);
}

static void test_schema_is_consistent(void) {
    CHECK_OK(srlm_schema_validate(srlm_config_schema()));
}

static void test_defaults(void) {
    srlm_config c;
    char *ov[] = {"model.path=/models/llama"};
    CHECK_OK(srlm_config_load(&c, NULL, 1, ov));
    CHECK(!strcmp(c.model.path, "/models/llama"));
    CHECK(!strcmp(c.run.name, "srlm"));
    CHECK(c.run.seed == 1234);
    CHECK(!strcmp(c.run.out_dir, "runs"));
    CHECK(c.run.watchdog_s == 1800.0);
    CHECK(!strcmp(c.model.tokenizer, ""));
    CHECK(c.model.dtype == SRLM_BF16);
    CHECK(c.parallel.tp == 1 && c.parallel.dp == 0);
    CHECK(c.backend.name == SRLM_BACKEND_CPU && c.backend.threads == 0);
    CHECK(c.generate.temperature == 0.7 && c.generate.top_p == 0.9 && c.generate.top_k == 0);
    CHECK(c.generate.max_new_tokens == 512 && c.generate.samples == 4);
    CHECK(c.judge.samples == 3 && !strcmp(c.judge.template_path, "configs/prompts/judge.txt"));
    CHECK(c.judge.max_new_tokens == 256);
    CHECK(c.self_instruct.shots_ift == 6 && c.self_instruct.shots_generated == 2);
    CHECK(c.self_instruct.temperature == 0.6 && c.self_instruct.rouge_l_max == 0.7);
    CHECK(c.train.sft.lr == 5.5e-6 && c.train.sft.lr_min == 1.1e-6);
    CHECK(c.train.sft.schedule == SRLM_SCHEDULE_COSINE);
    CHECK(c.train.dpo.lr == 1e-6 && c.train.dpo.lr_min == 1e-7);
    CHECK(c.train.dpo.schedule == SRLM_SCHEDULE_LINEAR);
    CHECK(c.train.sft.batch_size == 16 && c.train.dpo.batch_size == 16);
    CHECK(c.train.sft.dropout == 0.1 && c.train.dpo.dropout == 0.1);
    CHECK(c.train.dpo.beta == 0.1 && c.train.dpo.loss == SRLM_DPO_SIGMOID);
    CHECK(c.train.dpo.label_smoothing == 0.0 && !c.train.dpo.recompute);
    CHECK(c.train.sft.max_bad_steps == 3 && c.train.dpo.max_bad_steps == 3);
    CHECK(c.train.sft.loss_spike_factor == 0.0 && c.train.dpo.loss_spike_factor == 0.0); /* off */
    CHECK(c.train.sft.loss_spike_window == 20 && c.train.dpo.loss_spike_window == 20);
    CHECK(c.loop.iterations == 2 && !c.loop.length_control && c.loop.build_eft);
    CHECK(!strcmp(c.eval.judge_model, "M1") && !strcmp(c.data.ift, ""));
    srlm_config_free(&c);
    CHECK(c.model.path == NULL);

    /* srlm_config_defaults needs no model.path */
    CHECK_OK(srlm_config_defaults(&c));
    CHECK(!strcmp(c.model.path, "") && c.train.dpo.beta == 0.1);
    srlm_config_free(&c);
}

static const char *FILE_TEXT =
    "# comment\n"
    "run:\n"
    "  name: from-file\n"
    "  seed: 42\n"
    "model:\n"
    "  path: \"/data/llama 7b\"\n"
    "  dtype: float16\n"
    "backend: {name: cuda, threads: 8}\n"
    "judge:\n"                   /* an empty section is fine */
    "train:\n"
    "  sft:\n"
    "    lr: 1e-6\n"             /* plain 1e-6: a number, not a string */
    "    schedule: constant\n"
    "    recompute: true\n"
    "  dpo:\n"
    "    beta: 0.25\n"
    "    loss: ipo\n"
    "loop:\n"
    "  iterations: 3\n"
    "  length_control: True\n";

static void test_file_and_overrides(void) {
    const char *path = write_yaml("values.yaml", FILE_TEXT);
    srlm_config c;
    CHECK_OK(srlm_config_load(&c, path, 0, NULL));
    CHECK(!strcmp(c.run.name, "from-file") && c.run.seed == 42);
    CHECK(!strcmp(c.model.path, "/data/llama 7b") && c.model.dtype == SRLM_F16);
    CHECK(c.backend.name == SRLM_BACKEND_CUDA && c.backend.threads == 8);
    CHECK(c.judge.samples == 3); /* untouched default */
    CHECK(c.train.sft.lr == 1e-6 && c.train.sft.schedule == SRLM_SCHEDULE_CONSTANT);
    CHECK(c.train.sft.recompute && !c.train.dpo.recompute);
    CHECK(c.train.dpo.beta == 0.25 && c.train.dpo.loss == SRLM_DPO_IPO);
    CHECK(c.train.dpo.lr == 1e-6 && c.train.sft.lr_min == 1.1e-6); /* defaults beside the file's */
    CHECK(c.loop.iterations == 3 && c.loop.length_control);
    srlm_config_free(&c);

    /* overrides win over the file, in order; the file path may come from args */
    char *args[] = {(char *)path, "train.dpo.beta=0.5", "run.seed=7", "run.seed=8",
                    "model.path='/other: path'", "loop.length_control=false", "train.sft.lr=2.5e-5"};
    CHECK_OK(srlm_config_from_args(&c, (int)(sizeof args / sizeof args[0]), args));
    CHECK(c.train.dpo.beta == 0.5 && c.run.seed == 8);
    CHECK(!strcmp(c.model.path, "/other: path"));
    CHECK(!c.loop.length_control && c.train.sft.lr == 2.5e-5);
    CHECK(!strcmp(c.run.name, "from-file"));
    CHECK_OK(srlm_config_set(&c, "generate.samples=6"));
    CHECK(c.generate.samples == 6);
    srlm_config_free(&c);
}

static void test_file_errors(void) {
    expect_file_error("unknown.yaml", "model:\n  path: /m\ntrain:\n  sft:\n    lr: 1e-5\n    lrr: 1\n",
                      "lrr", "unknown key 'train.sft.lrr'", "did you mean 'train.sft.lr'?");
    expect_file_error("unknown_section.yaml", "model:\n  path: /m\ntrian:\n  sft: {}\n",
                      "trian", "unknown key 'trian'", "did you mean 'train'?");
    expect_file_error("string_for_number.yaml", "model:\n  path: /m\ntrain:\n  sft:\n    lr: abc\n",
                      "abc", "key 'train.sft.lr'", "expected a number > 0, found 'abc'");
    expect_file_error("list_for_number.yaml", "model:\n  path: /m\ntrain:\n  dpo:\n    beta: [1, 2]\n",
                      "[1", "key 'train.dpo.beta'", "found a list");
    expect_file_error("float_for_int.yaml", "model:\n  path: /m\ngenerate:\n  samples: 2.5\n",
                      "2.5", "key 'generate.samples'", "expected an integer >= 1, found '2.5'");
    expect_file_error("bad_bool.yaml", "model:\n  path: /m\nloop:\n  build_eft: yes\n",
                      "yes", "key 'loop.build_eft'", "expected true or false");
    expect_file_error("range.yaml", "model:\n  path: /m\ngenerate:\n  top_p: 1.5\n",
                      "1.5", "key 'generate.top_p'", "expected a number in (0, 1], found '1.5'");
    expect_file_error("range_low.yaml", "model:\n  path: /m\nparallel:\n  tp: 0\n",
                      "0\n", "key 'parallel.tp'", "expected an integer >= 1");
    expect_file_error("enum.yaml", "model:\n  path: /m\n  dtype: fp8\n",
                      "fp8", "key 'model.dtype'", "one of float32, bfloat16, float16, found 'fp8'");
    expect_file_error("duplicate.yaml", "model:\n  path: /m\ntrain:\n  sft:\n    lr: 1e-5\n    lr: 2e-5\n",
                      "lr: 2e-5", "duplicate key 'train.sft.lr'", "first given at line 5");
    expect_file_error("duplicate_section.yaml", "model:\n  path: /m\nrun: {seed: 1}\nrun: {seed: 2}\n",
                      "run: {seed: 2", "duplicate key 'run'", NULL);
    expect_file_error("mapping_for_scalar.yaml", "model:\n  path:\n    dir: /m\n",
                      "dir:", "key 'model.path'", "found a mapping");
    expect_file_error("scalar_for_mapping.yaml", "model:\n  path: /m\ntrain: fast\n",
                      "fast", "key 'train'", "expected a mapping");
    expect_file_error("top_level_list.yaml", "- model\n- run\n",
                      "- model", "expected a mapping of sections", "found a list");
    expect_file_error("malformed.yaml", "model:\n\tpath: /m\n",
                      "\tpath", "malformed YAML", "cannot start any token");
    expect_file_error("two_documents.yaml", "model:\n  path: /m\n---\nrun: {}\n",
                      "run: {}", "second YAML document", NULL);
    expect_file_error("empty_required.yaml", "model:\n  path: \"\"\n",
                      "\"\"", "key 'model.path'", "expected a non-empty string");

    /* missing required key: "FILE: missing required key 'model.path' (...)" */
    const char *path = write_yaml("missing.yaml", "run:\n  seed: 3\n");
    char want[1300];
    snprintf(want, sizeof want, "%s: missing required key 'model.path' (", path);
    srlm_config c;
    CHECK(srlm_config_load(&c, path, 0, NULL) == SRLM_BAD_INPUT);
    CHECK_MSG(!strncmp(srlm_last_error(), want, strlen(want)), "'%s'", srlm_last_error());
    srlm_config_free(&c);

    /* ...and given by an override instead, it loads */
    char *ov[] = {"model.path=/m"};
    CHECK_OK(srlm_config_load(&c, path, 1, ov));
    CHECK(c.run.seed == 3);
    srlm_config_free(&c);

    /* a file that does not exist is bad input, not a crash */
    snprintf(want, sizeof want, "%s/no-such.yaml", g_dir);
    CHECK(srlm_config_load(&c, want, 0, NULL) == SRLM_BAD_INPUT);
    CHECK(strstr(srlm_last_error(), "no-such.yaml") != NULL);
    srlm_config_free(&c);
}

static void test_override_errors(void) {
    srlm_config c;
    char *ov[] = {"model.path=/m", "train.sft.lr=abc"};
    CHECK(srlm_config_load(&c, NULL, 2, ov) == SRLM_BAD_INPUT);
    CHECK_MSG(!strcmp(srlm_last_error(), "override 'train.sft.lr=abc': expected a number > 0, found 'abc'"),
              "'%s'", srlm_last_error());
    srlm_config_free(&c);

    expect_override_error("train.sft.lrr=1", "override 'train.sft.lrr=1': unknown key 'train.sft.lrr' (did you mean 'train.sft.lr'?)");
    expect_override_error("generate.seed=1", "did you mean 'run.seed'?");
    expect_override_error("train.sft=1", "'train.sft' is a section");
    expect_override_error("loop.iterations=1.5", "expected an integer >= 1, found '1.5'");
    expect_override_error("loop.iterations=", "found an empty value");
    expect_override_error("loop.build_eft=maybe", "expected true or false, found 'maybe'");
    expect_override_error("train.dpo.loss=hinge", "expected one of sigmoid, ipo, found 'hinge'");
    expect_override_error("train.dpo.beta=[1]", "found a list");
    expect_override_error("train.dpo.dropout=1", "expected a number in [0, 1), found '1'");
    expect_override_error("run.name=@x", "malformed value");
    expect_override_error("run.seed", "expected key.sub=value");
    expect_override_error("generate.temperature=nan", "found 'nan'");
    expect_override_error("generate.temperature=1e999", "found '1e999'");

    /* rules between keys */
    expect_override_error("train.dpo.lr_min=1e-5", "train.dpo.lr_min (1e-05) is above train.dpo.lr (1e-06)");
    expect_override_error("train.sft.micro_batch_size=32", "train.sft.micro_batch_size (32) is above train.sft.batch_size (16)");
    expect_override_error("train.sft.micro_batch_tokens=2047",
                          "train.sft.micro_batch_tokens (2047) is below train.sft.max_seq_len (2048): the longest "
                          "example would not fit in a micro-batch; raise it to at least 2048 or set 0");
    expect_override_error("train.dpo.micro_batch_tokens=4000",
                          "train.dpo.micro_batch_tokens (4000) is below 2 x train.dpo.max_seq_len (2048): the "
                          "longest pair would not fit");
    expect_override_error("train.dpo.micro_batch_tokens=-1", "found '-1'");
    char *caps[] = {"model.path=/m", "train.sft.micro_batch_tokens=2048", "train.dpo.micro_batch_tokens=4096"};
    CHECK_OK(srlm_config_load(&c, NULL, 3, caps));
    CHECK(c.train.sft.micro_batch_tokens == 2048 && c.train.dpo.micro_batch_tokens == 4096);
    srlm_config_free(&c);
    expect_override_error("train.dpo.loss_spike_factor=0.5",
                          "train.dpo.loss_spike_factor (0.5): expected 0 (off) or a number above 1");
    expect_override_error("train.sft.loss_spike_factor=1", "train.sft.loss_spike_factor (1): expected 0 (off)");
    expect_override_error("train.sft.loss_spike_factor=-2", "expected a number >= 0, found '-2'");
    expect_override_error("train.sft.loss_spike_window=0", "expected an integer in [1, 1000], found '0'");
    expect_override_error("train.dpo.loss_spike_window=1001", "expected an integer in [1, 1000], found '1001'");
    char *spikes[] = {"model.path=/m", "train.sft.loss_spike_factor=3", "train.dpo.loss_spike_window=1000"};
    CHECK_OK(srlm_config_load(&c, NULL, 3, spikes));
    CHECK(c.train.sft.loss_spike_factor == 3.0 && c.train.dpo.loss_spike_window == 1000);
    srlm_config_free(&c);
    expect_override_error("self_instruct.min_words=200", "self_instruct.min_words (200) is above");
    char *constant[] = {"model.path=/m", "train.dpo.schedule=constant", "train.dpo.lr_min=1e-5"};
    CHECK_OK(srlm_config_load(&c, NULL, 3, constant)); /* lr_min unused by a constant schedule */
    srlm_config_free(&c);

    /* the required key missing with no file at all */
    CHECK(srlm_config_load(&c, NULL, 0, NULL) == SRLM_BAD_INPUT);
    CHECK(strstr(srlm_last_error(), "missing required key 'model.path'") != NULL);
    srlm_config_free(&c);
}

static char *print_to_string(const srlm_config *c) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) exit(1);
    CHECK_OK(srlm_config_print(c, f));
    fclose(f);
    return buf;
}

static void test_print_round_trip(void) {
    /* strings that need quoting and a double that needs 17 digits; data.eft holds
     * characters that YAML reads as line breaks (NEL, U+2028, U+2029) or refuses raw
     * (C1 controls, U+FFFE): the printer must escape them (found by fuzz_yaml_config) */
    char *ov[] = {"model.path=/m", "run.name='a: b # c \"q\" \\\\ yes'", "data.ift=données.jsonl",
                  "data.eft=\"a\\Nb\\Lc\\Pd\\x80\\x9fe\\uFFFE\\x01\"",
                  "train.dpo.beta=0.30000000000000004", "run.watchdog_s=1e-300", "eval.heldout=\"tab\\there\"",
                  "train.sft.epochs=2.5", "generate.top_k=40", "train.dpo.recompute=true"};
    srlm_config a, b;
    CHECK_OK(srlm_config_load(&a, NULL, (int)(sizeof ov / sizeof ov[0]), ov));
    CHECK(!strcmp(a.run.name, "a: b # c \"q\" \\\\ yes"));
    CHECK(!strcmp(a.eval.heldout, "tab\there"));
    char *text = print_to_string(&a);
    CHECK_OK(srlm_config_load_text(&b, "<printed>", text, 0, NULL));
    CHECK(srlm_config_equal(&a, &b));
    CHECK(b.train.dpo.beta == 0.30000000000000004 && b.run.watchdog_s == 1e-300);
    CHECK(!strcmp(b.run.name, a.run.name) && !strcmp(b.data.ift, "données.jsonl"));
    CHECK_MSG(!strcmp(b.data.eft, "a\xc2\x85" "b\xe2\x80\xa8" "c\xe2\x80\xa9" "d\xc2\x80\xc2\x9f" "e\xef\xbf\xbe\x01"),
              "data.eft read back as [%s]", b.data.eft);
    char *text2 = print_to_string(&b);
    CHECK_MSG(!strcmp(text, text2), "printing twice differs:\n%s\n---\n%s", text, text2);
    /* nested, every key, defaults included */
    CHECK(strstr(text, "train:\n  sft:\n    lr: 5.5e-06\n") != NULL);
    CHECK(strstr(text, "\n  dpo:\n") != NULL && strstr(text, "    beta: 0.30000000000000004\n") != NULL);
    CHECK(strstr(text, "  template: \"configs/prompts/judge.txt\"\n") != NULL);
    /* equal() notices a difference (so the round-trip check means something) */
    CHECK_OK(srlm_config_set(&b, "train.sft.max_seq_len=4096"));
    CHECK(!srlm_config_equal(&a, &b));
    free(text);
    free(text2);
    srlm_config_free(&a);
    srlm_config_free(&b);

    /* the shipped configs load and round-trip too */
    const char *source = getenv("SRLM_SOURCE_DIR");
    if (!source) {
        printf("SRLM_SOURCE_DIR unset (run through ctest): not checking configs/*.yaml\n");
        return;
    }
    const char *names[] = {"tiny-test.yaml", "llama2-7b.yaml"};
    for (int i = 0; i < 2; i++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/configs/%s", source, names[i]);
        CHECK_OK(srlm_config_load(&a, path, 0, NULL));
        text = print_to_string(&a);
        CHECK_OK(srlm_config_load_text(&b, path, text, 0, NULL));
        CHECK_MSG(srlm_config_equal(&a, &b), "%s does not round-trip", names[i]);
        free(text);
        srlm_config_free(&a);
        srlm_config_free(&b);
    }
}

static void test_hash(void) {
    srlm_config a, b;
    char *ov[] = {"model.path=/m"};
    CHECK_OK(srlm_config_load(&a, NULL, 1, ov));
    CHECK_OK(srlm_config_load(&b, NULL, 1, ov));
    CHECK(srlm_config_hash(&a) == srlm_config_hash(&b));
    uint64_t h = srlm_config_hash(&a);
    CHECK_OK(srlm_config_set(&b, "train.dpo.beta=0.2"));
    CHECK(srlm_config_hash(&b) != h);
    CHECK_OK(srlm_config_set(&b, "train.dpo.beta=0.1"));
    CHECK(srlm_config_hash(&b) == h);
    CHECK_OK(srlm_config_set(&b, "model.path=/other"));
    CHECK(srlm_config_hash(&b) != h);
    CHECK_OK(srlm_config_set(&b, "model.path=/m"));
    /* keys that do not change results leave it alone */
    CHECK_OK(srlm_config_set(&b, "run.name=renamed"));
    CHECK_OK(srlm_config_set(&b, "backend.threads=3"));
    CHECK(srlm_config_hash(&b) == h);
    srlm_config_free(&a);
    srlm_config_free(&b);

    /* a key at its default is not hashed: a key added to the schema later leaves
     * the hashes of existing configs alone (else runs could not resume across
     * an upgrade), and takes part once it is set to something else */
    typedef struct { int a; double b; } two;
    const srlm_schema_field fa = {"x.a", SRLM_FIELD_INT, offsetof(two, a), "3", 0, 10, NULL, 0, "a"};
    const srlm_schema_field fb = {"x.b", SRLM_FIELD_DOUBLE, offsetof(two, b), "0.5", 0, 1, NULL, 0, "b"};
    const srlm_schema_field one_f[] = {fa}, both_f[] = {fa, fb};
    const srlm_schema one = {one_f, 1}, both = {both_f, 2};
    two t = {7, 0.5};
    CHECK(srlm_schema_hash(&one, &t) == srlm_schema_hash(&both, &t));
    t.b = 0.25;
    CHECK(srlm_schema_hash(&one, &t) != srlm_schema_hash(&both, &t));
    t.a = 3; /* the old key back at its default */
    t.b = 0.5;
    CHECK(srlm_schema_hash(&one, &t) == srlm_schema_hash(&both, &t));
    t.a = 4;
    CHECK(srlm_schema_hash(&one, &t) != srlm_schema_hash(&both, (&(two){3, 0.5})));
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "%s/config", test_env("SRLM_TMP", "/tmp/srlm-test"));
    make_dirs(g_dir);
    test_schema_is_consistent();
    test_defaults();
    test_file_and_overrides();
    test_file_errors();
    test_override_errors();
    test_print_round_trip();
    test_hash();
    TEST_DONE();
}
