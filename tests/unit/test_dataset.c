/* SFT and DPO data loading: text lines go through the chat formatter, id lines
 * are taken as they are, the pairs format of DESIGN.md loads, and every skip
 * (empty response, chosen == rejected, too long) is counted, not an error;
 * truncate_prompt keeps BOS and the prompt's end; malformed lines, bad ids and
 * bad reference log-probs are errors naming FILE:LINE. Uses the fixture's small
 * SentencePiece model (BOS 1, EOS 2, 320 pieces). */
#include <string.h>

#include "io/chat.h"
#include "io/config.h"
#include "io/fsutil.h"
#include "train/dataset.h"
#include "test.h"

static char g_dir[900];
static srlm_tokenizer *g_tok;

static const char *write_file(const char *name, const char *text) {
    static char path[1100];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    FILE *f = fopen(path, "wb");
    fputs(text, f);
    fclose(f);
    return path;
}

static int ids_equal(const int *a, const int *b, int n) { return n == 0 || !memcmp(a, b, sizeof(int) * (size_t)n); }

/* A load that must fail with SRLM_BAD_INPUT and a message containing `want`. */
#define CHECK_SFT_FAILS(file, want)                                                            \
    do {                                                                                       \
        srlm_sft_data d_;                                                                      \
        srlm_status s_ = srlm_sft_data_load(&d_, (file), g_tok, 320, 64, SRLM_TRUNC_SKIP, NULL); \
        CHECK_MSG(s_ == SRLM_BAD_INPUT && strstr(srlm_last_error(), (want)),                   \
                  "status %d, message '%s', wanted '%s'", (int)s_, srlm_last_error(), (want)); \
        if (s_ == SRLM_OK) srlm_sft_data_free(&d_);                                            \
    } while (0)
#define CHECK_DPO_FAILS(file, want)                                                            \
    do {                                                                                       \
        srlm_dpo_data d_;                                                                      \
        srlm_status s_ = srlm_dpo_data_load(&d_, (file), g_tok, 320, 64, SRLM_TRUNC_SKIP, NULL); \
        CHECK_MSG(s_ == SRLM_BAD_INPUT && strstr(srlm_last_error(), (want)),                   \
                  "status %d, message '%s', wanted '%s'", (int)s_, srlm_last_error(), (want)); \
        if (s_ == SRLM_OK) srlm_dpo_data_free(&d_);                                            \
    } while (0)

static void test_sft_text_and_ids(void) {
    const char *path = write_file("sft.jsonl",
        "{\"prompt\": \"Count the words.\", \"response\": \"Four words here.\"}\n"
        "\n"
        "{\"prompt_ids\": [1, 5, 6, 7], \"response_ids\": [8, 9, 2], \"extra\": 1}\n"
        "{\"prompt\": \"Say nothing.\", \"response\": \"  \"}\n"
        "{\"prompt_ids\": [1, 5], \"response_ids\": []}\n"
        "{\"prompt_ids\": [1, 5], \"response_ids\": [2]}\n");
    srlm_sft_data d;
    CHECK_OK(srlm_sft_data_load(&d, path, g_tok, 320, 1024, SRLM_TRUNC_SKIP, "Be brief."));
    if (d.n != 2) { CHECK_MSG(0, "kept %d examples, expected 2", d.n); srlm_sft_data_free(&d); return; }
    int *p, *a, np, na;
    CHECK_OK(srlm_chat_encode_pair(g_tok, "Be brief.", "Count the words.", "Four words here.", &p, &np, &a, &na));
    CHECK(d.ex[0].n_prompt == np && d.ex[0].n_response == na);
    CHECK(ids_equal(d.ex[0].ids, p, np) && ids_equal(d.ex[0].ids + np, a, na));
    CHECK(d.ex[0].ids[0] == 1 && d.ex[0].ids[np + na - 1] == 2);
    free(p);
    free(a);
    int want[] = {1, 5, 6, 7, 8, 9, 2};
    CHECK(d.ex[1].n_prompt == 4 && d.ex[1].n_response == 3 && ids_equal(d.ex[1].ids, want, 7));
    CHECK(d.counts.read == 5 && d.counts.kept == 2 && d.counts.skipped_empty == 3);
    CHECK(d.counts.skipped_too_long == 0 && d.counts.truncated == 0 && d.counts.skipped_equal == 0);
    srlm_sft_data_free(&d);
    CHECK(d.ex == NULL && d.n == 0);
}

static void test_sft_length(void) {
    /* prompt 6 + response 3 = 9 tokens; response 8 alone needs 9 with BOS */
    const char *path = write_file("long.jsonl",
        "{\"prompt_ids\": [1, 10, 11, 12, 13, 14], \"response_ids\": [20, 21, 2]}\n"
        "{\"prompt_ids\": [1, 10], \"response_ids\": [20, 21, 22, 23, 24, 25, 26, 2]}\n"
        "{\"prompt_ids\": [1, 10], \"response_ids\": [20, 2]}\n");
    srlm_sft_data d;
    CHECK_OK(srlm_sft_data_load(&d, path, g_tok, 320, 8, SRLM_TRUNC_SKIP, NULL));
    CHECK(d.n == 1 && d.counts.skipped_too_long == 2 && d.counts.truncated == 0 && d.counts.read == 3);
    srlm_sft_data_free(&d);

    CHECK_OK(srlm_sft_data_load(&d, path, g_tok, 320, 8, SRLM_TRUNC_PROMPT, NULL));
    CHECK(d.n == 2 && d.counts.truncated == 1 && d.counts.skipped_too_long == 1 && d.counts.kept == 2);
    if (d.n == 2) {
        /* 8 - 3 = 5 prompt tokens: BOS and the prompt's last 4 */
        CHECK_MSG(d.ex[0].n_prompt == 5 && d.ex[0].n_response == 3, "prompt %d response %d", d.ex[0].n_prompt,
                  d.ex[0].n_response);
        CHECK(d.ex[0].ids[0] == 1 && ids_equal(d.ex[0].ids + 1, (int[]){11, 12, 13, 14}, 4));
        CHECK(d.ex[0].n_prompt + d.ex[0].n_response == 8);
        CHECK(d.ex[1].n_prompt == 2 && d.ex[1].n_response == 2);
    }
    srlm_sft_data_free(&d);

    /* exactly max_seq_len fits as is */
    CHECK_OK(srlm_sft_data_load(&d, path, g_tok, 320, 9, SRLM_TRUNC_SKIP, NULL));
    CHECK(d.n == 2 && d.counts.skipped_too_long == 1);
    srlm_sft_data_free(&d);
}

static void test_sft_errors(void) {
    CHECK_SFT_FAILS(write_file("bad1.jsonl", "{\"prompt\": \"a\", \"response\": \"b\"}\n{\"prompt\": \"a\",\n"),
                    "bad1.jsonl:2");
    CHECK_SFT_FAILS(write_file("bad2.jsonl", "{\"prompt\": \"a\"}\n"), "bad2.jsonl:1: missing key \"response\"");
    CHECK_SFT_FAILS(write_file("bad3.jsonl", "{\"prompt\": \"a\", \"response\": 5}\n"), "bad3.jsonl:1");
    CHECK_SFT_FAILS(write_file("bad4.jsonl", "{\"prompt\": \"a\", \"response\": \"b\"}\n"
                                              "{\"prompt_ids\": [1, 320], \"response_ids\": [3, 2]}\n"),
                    "bad4.jsonl:2");
    CHECK_SFT_FAILS(write_file("bad5.jsonl", "{\"prompt_ids\": [1, 3], \"response_ids\": [3, -1]}\n"), "bad5.jsonl:1");
    CHECK_SFT_FAILS(write_file("bad6.jsonl", "{\"prompt_ids\": [1, 3]}\n"), "bad6.jsonl:1: missing key \"response_ids\"");
    CHECK_SFT_FAILS(write_file("bad7.jsonl", "[1, 2]\n"), "bad7.jsonl:1");
    /* an empty prompt: nothing predicts the first response token */
    CHECK_SFT_FAILS(write_file("bad_np.jsonl", "{\"prompt_ids\": [1], \"response_ids\": [3, 2]}\n"
                                               "{\"prompt_ids\": [], \"response_ids\": [3, 2]}\n"),
                    "bad_np.jsonl:2: prompt_ids is empty");
    /* one object per line: text after it was ignored (found by fuzz_jsonl_sft) */
    CHECK_SFT_FAILS(write_file("bad8.jsonl", "{\"prompt\": \"a\", \"response\": \"b\"} {\"x\": 1}\n"),
                    "bad8.jsonl:1:34: not valid JSON (text after the value)");
    CHECK_SFT_FAILS(write_file("bad9.jsonl", "{\"prompt\": \"a\", \"response\": \"b\"}x\r\n"), "bad9.jsonl:1:33");
    /* nothing usable: the counts are in the message */
    CHECK_SFT_FAILS(write_file("none.jsonl", "{\"prompt\": \"a\", \"response\": \"\"}\n"
                                             "{\"prompt_ids\": [1, 3, 4, 5, 6, 7, 8, 9], \"response_ids\": "
                                             "[3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, "
                                             "21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, "
                                             "38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, "
                                             "55, 56, 57, 58, 59, 60, 61, 62, 2]}\n"),
                    "none.jsonl: no usable examples (read 2, skipped 1 longer than max_seq_len, 1 with an empty response)");
    CHECK_SFT_FAILS(write_file("empty.jsonl", "\n\n"), "empty.jsonl: no usable examples (read 0");
    {
        char missing[1100];
        snprintf(missing, sizeof missing, "%s/absent.jsonl", g_dir);
        CHECK_SFT_FAILS(missing, "absent.jsonl");
    }
    /* text ids beyond the model's vocab (the tokenizer has 320 pieces) */
    srlm_sft_data d;
    const char *path = write_file("vocab.jsonl", "{\"prompt\": \"Count the words.\", \"response\": \"Four.\"}\n");
    srlm_status s = srlm_sft_data_load(&d, path, g_tok, 100, 64, SRLM_TRUNC_SKIP, NULL);
    CHECK_MSG(s == SRLM_BAD_INPUT && strstr(srlm_last_error(), "vocab.jsonl:1") &&
              strstr(srlm_last_error(), "outside the model's vocab [0, 100)"), "%s", srlm_last_error());
    /* text without a tokenizer */
    s = srlm_sft_data_load(&d, path, NULL, 320, 64, SRLM_TRUNC_SKIP, NULL);
    CHECK_MSG(s == SRLM_BAD_INPUT && strstr(srlm_last_error(), "vocab.jsonl:1"), "%s", srlm_last_error());
    /* ids need no tokenizer */
    path = write_file("ids.jsonl", "{\"prompt_ids\": [1, 3], \"response_ids\": [3, 2]}\n");
    CHECK_OK(srlm_sft_data_load(&d, path, NULL, 320, 64, SRLM_TRUNC_SKIP, NULL));
    CHECK(d.n == 1);
    srlm_sft_data_free(&d); /* a failed load leaves nothing to free: harmless */
}

static void test_dpo(void) {
    /* the pairs format of DESIGN.md "Files": text and ids (ids win), scores, sha */
    const char *path = write_file("pairs.jsonl",
        "{\"prompt_id\": \"p7\", \"prompt\": \"ignored\", \"chosen\": \"x\", \"rejected\": \"y\", "
        "\"prompt_ids\": [1, 5, 6], \"chosen_ids\": [7, 8, 2], \"rejected_ids\": [9, 2], "
        "\"score_chosen\": 4.5, \"score_rejected\": 1, \"ref_logp_chosen\": -12.25, "
        "\"ref_logp_rejected\": -3.5, \"tokenizer_sha256\": \"abc\"}\n"
        "{\"prompt\": \"Write a poem.\", \"chosen\": \"The sea.\", \"rejected\": \"The sky.\"}\n"
        "{\"prompt\": \"Same.\", \"chosen\": \"Yes.\", \"rejected\": \" Yes. \"}\n"
        "{\"prompt\": \"Empty.\", \"chosen\": \"Yes.\", \"rejected\": \"\"}\n"
        "{\"prompt_ids\": [1, 5], \"chosen_ids\": [], \"rejected_ids\": [3, 2]}\n"
        "{\"prompt_ids\": [1, 5], \"chosen_ids\": [3, 2], \"rejected_ids\": [3, 2], \"ref_logp_chosen\": null, "
        "\"ref_logp_rejected\": null}\n");
    srlm_dpo_data d;
    CHECK_OK(srlm_dpo_data_load(&d, path, g_tok, 320, 1024, SRLM_TRUNC_SKIP, NULL));
    CHECK(d.counts.read == 6 && d.counts.kept == 2 && d.counts.skipped_equal == 2 && d.counts.skipped_empty == 2);
    if (d.n == 2) {
        srlm_dpo_example *e = &d.ex[0];
        CHECK(e->n_prompt == 3 && e->n_chosen == 3 && e->n_rejected == 2);
        CHECK(ids_equal(e->prompt, (int[]){1, 5, 6}, 3) && ids_equal(e->chosen, (int[]){7, 8, 2}, 3) &&
              ids_equal(e->rejected, (int[]){9, 2}, 2));
        CHECK(e->has_ref && e->ref_c == -12.25 && e->ref_r == -3.5);
        e = &d.ex[1];
        int *p, *a, np, na, *p2, *b, np2, nb;
        CHECK_OK(srlm_chat_encode_pair(g_tok, NULL, "Write a poem.", "The sea.", &p, &np, &a, &na));
        CHECK_OK(srlm_chat_encode_pair(g_tok, NULL, "Write a poem.", "The sky.", &p2, &np2, &b, &nb));
        CHECK(!e->has_ref && e->n_prompt == np && e->n_chosen == na && e->n_rejected == nb);
        CHECK(ids_equal(e->prompt, p, np) && ids_equal(e->chosen, a, na) && ids_equal(e->rejected, b, nb));
        free(p), free(a), free(p2), free(b);
    }
    srlm_dpo_data_free(&d);

    /* fits only if prompt + the longer response fits; truncation serves the longer one */
    path = write_file("dpolong.jsonl",
        "{\"prompt_ids\": [1, 10, 11, 12, 13], \"chosen_ids\": [20, 2], \"rejected_ids\": [30, 31, 32, 2]}\n"
        "{\"prompt_ids\": [1, 10], \"chosen_ids\": [20, 2], \"rejected_ids\": [30, 31, 32, 33, 34, 35, 36, 2]}\n");
    CHECK_OK(srlm_dpo_data_load(&d, path, g_tok, 320, 9, SRLM_TRUNC_SKIP, NULL));
    CHECK(d.n == 1 && d.counts.skipped_too_long == 1 && d.ex[0].n_prompt == 5);
    srlm_dpo_data_free(&d);
    CHECK_OK(srlm_dpo_data_load(&d, path, g_tok, 320, 6, SRLM_TRUNC_PROMPT, NULL));
    CHECK(d.n == 1 && d.counts.truncated == 1 && d.counts.skipped_too_long == 1);
    if (d.n == 1) {
        CHECK(d.ex[0].n_prompt == 2 && d.ex[0].prompt[0] == 1 && d.ex[0].prompt[1] == 13);
        CHECK(ids_equal(d.ex[0].chosen, (int[]){20, 2}, 2) && ids_equal(d.ex[0].rejected, (int[]){30, 31, 32, 2}, 4));
    }
    srlm_dpo_data_free(&d);

    CHECK_DPO_FAILS(write_file("dbad_np.jsonl", "{\"prompt_ids\": [], \"chosen_ids\": [3, 2], \"rejected_ids\": [4, 2]}\n"),
                    "dbad_np.jsonl:1: prompt_ids is empty");
    CHECK_DPO_FAILS(write_file("dbad1.jsonl", "{\"prompt_ids\": [1], \"chosen_ids\": [3, 2], \"rejected_ids\": [4, 2], "
                                              "\"ref_logp_chosen\": -1}\n"), "dbad1.jsonl:1");
    CHECK_DPO_FAILS(write_file("dbad2.jsonl", "{\"prompt_ids\": [1], \"chosen_ids\": [3, 2], \"rejected_ids\": [4, 2], "
                                              "\"ref_logp_chosen\": -1, \"ref_logp_rejected\": -1e999}\n"),
                    "dbad2.jsonl:1: key \"ref_logp_rejected\": expected a finite number");
    CHECK_DPO_FAILS(write_file("dbad3.jsonl", "{\"prompt_ids\": [1], \"chosen_ids\": [3, 2], \"rejected_ids\": [4, 2], "
                                              "\"ref_logp_chosen\": \"-1\", \"ref_logp_rejected\": -1}\n"),
                    "dbad3.jsonl:1: key \"ref_logp_chosen\": expected a number");
    CHECK_DPO_FAILS(write_file("dbad4.jsonl", "{\"prompt_ids\": [1], \"chosen_ids\": [3, 2]}\n"),
                    "dbad4.jsonl:1: missing key \"rejected_ids\"");
    CHECK_DPO_FAILS(write_file("dbad5.jsonl", "{\"prompt\": \"a\", \"chosen\": \"b\"}\n"),
                    "dbad5.jsonl:1: missing key \"rejected\"");
    CHECK_DPO_FAILS(write_file("dbad6.jsonl", "{\"prompt_ids\": [1], \"chosen_ids\": [3, 2], \"rejected_ids\": [3, 2]}\n"),
                    "dbad6.jsonl: no usable examples (read 1, skipped 0 longer than max_seq_len, 0 with an empty "
                    "response, 1 with chosen == rejected)");
}

/* The next micro-batch: at most max_examples, the tokens at or under the cap
 * (0: none), never empty even when the first example alone is over it. */
static void test_micro_batch_take(void) {
    const int tok[] = {5, 3, 4, 9, 1, 1};
    CHECK(srlm_micro_batch_take(tok, 6, 8, 0) == 6);
    CHECK(srlm_micro_batch_take(tok, 6, 4, 0) == 4);
    CHECK(srlm_micro_batch_take(tok, 6, 8, 12) == 3);  /* 5 + 3 + 4 = 12 fits; + 9 does not */
    CHECK(srlm_micro_batch_take(tok, 6, 8, 11) == 2);
    CHECK(srlm_micro_batch_take(tok, 6, 2, 12) == 2);  /* the example cap first */
    CHECK(srlm_micro_batch_take(tok + 3, 3, 8, 9) == 1); /* 9 alone, then 1 would overflow */
    CHECK(srlm_micro_batch_take(tok + 3, 3, 8, 11) == 3);
    CHECK(srlm_micro_batch_take(tok, 6, 8, 4) == 1);   /* 5 > 4: alone all the same */
    CHECK(srlm_micro_batch_take(tok, 1, 8, 100) == 1);
    /* walking a batch covers every example once, each group within both caps */
    int covered = 0, groups = 0;
    for (int i = 0, n; i < 6; i += n, groups++) {
        n = srlm_micro_batch_take(tok + i, 6 - i, 3, 10);
        int sum = 0;
        for (int k = 0; k < n; k++) sum += tok[i + k];
        CHECK_MSG(n >= 1 && n <= 3 && (sum <= 10 || n == 1), "group at %d: %d examples, %d tokens", i, n, sum);
        covered += n;
    }
    CHECK(covered == 6 && groups == 4); /* {5, 3} {4} {9, 1} {1} */
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "%s/test_dataset", test_env("SRLM_TMP", "/tmp"));
    CHECK_OK(srlm_mkdir_p(g_dir));
    char tokpath[1100];
    snprintf(tokpath, sizeof tokpath, "%s/llama/tiny-gqa/tokenizer.model", test_env("SRLM_FIXTURES", "tests/fixtures"));
    CHECK_OK(srlm_tokenizer_load(&g_tok, tokpath));
    if (!g_tok) TEST_DONE();
    test_sft_text_and_ids();
    test_sft_length();
    test_sft_errors();
    test_dpo();
    test_micro_batch_take();
    srlm_tokenizer_free(g_tok);
    TEST_DONE();
}
