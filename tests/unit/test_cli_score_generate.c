/* `srlm score` and `srlm generate` end to end through the binary, against the
 * transformers references in the fixtures: score = log_softmax-and-gather of
 * transformers' logits (tolerance 1e-4 per token, as in test_llama_parity);
 * generate = transformers' greedy generate (exact ids). Also their bad-input
 * paths: exit status 2 and a message naming the file and line. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "test.h"

/* Run a shell command; capture stdout (and stderr when merged by the command). */
static int run(const char *cmd, char *out, size_t cap) {
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int rc = pclose(p);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (f) { fputs(text, f); fclose(f); }
}

static void check_model(const char *bin, const char *dir, const char *tmp) {
    char path[1200], cmd[4096];
    static char out[1 << 16];
    snprintf(path, sizeof path, "%s/reference.json", dir);
    char *text = test_read_file(path, NULL);
    CHECK_MSG(text != NULL, "cannot read %s", path);
    if (!text) return;
    cJSON *ref = cJSON_Parse(text);
    free(text);

    /* score: one input line per reference case, in the ids form */
    const cJSON *scores = cJSON_GetObjectItem(ref, "scores");
    char input[1200];
    snprintf(input, sizeof input, "%s/score-input.jsonl", tmp);
    FILE *f = fopen(input, "w");
    for (const cJSON *sc = scores->child; sc; sc = sc->next) {
        char *p = cJSON_PrintUnformatted(cJSON_GetObjectItem(sc, "prompt_ids"));
        char *r = cJSON_PrintUnformatted(cJSON_GetObjectItem(sc, "response_ids"));
        fprintf(f, "{\"prompt_ids\": %s, \"response_ids\": %s}\n\n", p, r); /* blank lines are skipped */
        free(p); free(r);
    }
    fclose(f);
    snprintf(cmd, sizeof cmd, "'%s' score --model '%s' --input '%s' --threads 1", bin, dir, input);
    int rc = run(cmd, out, sizeof out);
    CHECK_MSG(rc == 0, "%s exited %d", cmd, rc);
    char *line = strtok(out, "\n");
    for (const cJSON *sc = scores->child; sc; sc = sc->next) {
        CHECK_MSG(line != NULL, "score printed fewer lines than inputs");
        if (!line) break;
        cJSON *got = cJSON_Parse(line);
        CHECK_MSG(got != NULL, "score output is not JSON: %s", line);
        if (!got) break;
        const cJSON *want_tok = cJSON_GetObjectItem(sc, "logprobs");
        int n = cJSON_GetArraySize(want_tok);
        CHECK(cJSON_GetObjectItem(got, "n_tokens")->valueint == n);
        double worst = 0;
        for (int i = 0; i < n; i++) {
            double d = fabs(cJSON_GetArrayItem(cJSON_GetObjectItem(got, "token_logps"), i)->valuedouble -
                            cJSON_GetArrayItem(want_tok, i)->valuedouble);
            if (!(d <= worst)) worst = d;
        }
        double dsum = fabs(cJSON_GetObjectItem(got, "logp")->valuedouble -
                           cJSON_GetObjectItem(sc, "sum")->valuedouble);
        CHECK_MSG(worst <= 1e-4 && dsum <= 1e-4 * n, "%s: score |dlogp| %.3g, |dsum| %.3g", dir, worst, dsum);
        printf("%s: score (%d tokens) |dsum| %.2e\n", dir, n, dsum);
        cJSON_Delete(got);
        line = strtok(NULL, "\n");
    }

    /* generate: greedy ids equal transformers' generate */
    const cJSON *gen = cJSON_GetObjectItem(ref, "generate");
    int nw = cJSON_GetArraySize(cJSON_GetObjectItem(gen, "new_ids"));
    snprintf(cmd, sizeof cmd, "'%s' generate --model '%s' --prompt '%s' --max-new-tokens %d "
             "--ignore-eos --print-ids --threads 1", bin, dir,
             cJSON_GetObjectItem(gen, "prompt")->valuestring, nw);
    rc = run(cmd, out, sizeof out);
    CHECK_MSG(rc == 0, "%s exited %d", cmd, rc);
    char *ids_line = strrchr(out, '\n');
    while (ids_line && ids_line > out && ids_line[-1] != '\n') ids_line--; /* start of the last line */
    int ok = ids_line != NULL;
    const cJSON *want = cJSON_GetObjectItem(gen, "new_ids");
    char *s = ids_line;
    for (int i = 0; ok && i < nw; i++) {
        char *end;
        long v = strtol(s, &end, 10);
        ok = end != s && v == cJSON_GetArrayItem(want, i)->valueint;
        s = end;
    }
    CHECK_MSG(ok, "%s: generate ids differ from transformers' greedy generate: %s", dir, out);
    printf("%s: generate %d tokens %s\n", dir, nw, ok ? "match" : "DIFFER");
    cJSON_Delete(ref);
}

static void expect_bad(const char *cmd, const char *needle) {
    static char out[1 << 14];
    char full[4200];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    int rc = run(full, out, sizeof out);
    CHECK_MSG(rc == 2, "%s: expected exit 2, got %d (%s)", cmd, rc, out);
    CHECK_MSG(strstr(out, needle) != NULL, "%s: message lacks '%s': %s", cmd, needle, out);
}

int main(void) {
    const char *bin = getenv("SRLM_BIN"), *fx = test_env("SRLM_FIXTURES", "tests/fixtures");
    if (!bin) TEST_SKIP("SRLM_BIN is not set (run through ctest)");
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s/cli_score_generate", test_env("SRLM_TMP", "/tmp"));
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", tmp);
    CHECK(system(cmd) == 0);
    const char *cases[] = {"tiny-gqa", "tiny-rope", "tiny-bf16", "tiny-mistral"};
    char dir[1100];
    for (int i = 0; i < (int)(sizeof cases / sizeof cases[0]); i++) {
        snprintf(dir, sizeof dir, "%s/llama/%s", fx, cases[i]);
        check_model(bin, dir, tmp);
    }

    /* bad inputs */
    snprintf(dir, sizeof dir, "%s/llama/tiny-gqa", fx);
    char bad[1200];
    snprintf(bad, sizeof bad, "%s/bad.jsonl", tmp);
    write_file(bad, "{\"prompt_ids\": [1, 2], \"response_ids\": [3]}\n{\"prompt_ids\": [1, 2,\n");
    snprintf(cmd, sizeof cmd, "'%s' score --model '%s' --input '%s'", bin, dir, bad);
    expect_bad(cmd, "bad.jsonl:2");
    write_file(bad, "{\"prompt_ids\": [1, 99999], \"response_ids\": [3]}\n");
    expect_bad(cmd, "expected a token id in [0, 320), found 99999");
    write_file(bad, "{\"prompt_ids\": [1, 2]}\n");
    expect_bad(cmd, "needs \"response_ids\"");
    write_file(bad, "{\"prompt\": 5, \"response\": \"x\"}\n");
    expect_bad(cmd, "key \"prompt\": expected a string, found a number");
    write_file(bad, "[1, 2]\n");
    expect_bad(cmd, "expected a JSON object, found an array");
    write_file(bad, "{\"prompt_ids\": [], \"response_ids\": [3]}\n");
    expect_bad(cmd, "at least one token each");
    snprintf(cmd, sizeof cmd, "'%s' score --input '%s'", bin, bad);
    expect_bad(cmd, "--model DIR is required");
    snprintf(cmd, sizeof cmd, "'%s' generate --model '%s/nope' --prompt hi", bin, tmp);
    expect_bad(cmd, "nope");
    snprintf(cmd, sizeof cmd, "'%s' generate --model '%s' --prompt hi --max-new-tokens zero", bin, dir);
    expect_bad(cmd, "--max-new-tokens expects an integer, found 'zero'");
    TEST_DONE();
}
