/* The LLM-as-a-Judge template (configs/prompts/judge.txt) and the score
 * parser: loading, placeholder checks, verbatim rendering, the shared prefix,
 * and a table of judge outputs with the verdict each must get. */
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pipeline/judge.h"
#include "test.h"

static char tmpdir[4096];

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
    fputs(text, f);
    fclose(f);
}

/* ------------------------------------------------------------ the template */

static void test_shipped_template(void) {
    char path[4200];
    snprintf(path, sizeof path, "%s/configs/prompts/judge.txt", test_env("SRLM_SOURCE_DIR", "."));
    srlm_judge_template t;
    CHECK_OK(srlm_judge_template_load(&t, path));
    if (!t.text) return;
    /* comments are gone; the rubric and the final-line instruction are there */
    CHECK(t.text[0] != '#' && strstr(t.text, "\n#") == NULL);
    CHECK(strstr(t.text, "Add 1 point") != NULL);
    CHECK(strstr(t.text, "\nScore: N\n") != NULL);
    CHECK(t.text[strlen(t.text) - 1] != '\n'); /* trimmed */

    char *out = NULL;
    CHECK_OK(srlm_judge_render(&t, "What is 2+2?", "It is 4.", &out));
    CHECK(out && strstr(out, "--- Question ---\nWhat is 2+2?\n--- End of question ---") != NULL);
    CHECK(out && strstr(out, "--- Answer ---\nIt is 4.\n--- End of answer ---") != NULL);
    CHECK(out && !strstr(out, "{instruction}") && !strstr(out, "{response}"));

    /* the rubric (everything before the question) is the shared prefix */
    size_t k = srlm_judge_shared_prefix_len(&t);
    const char *q = strstr(t.text, "{instruction}");
    CHECK(q && k == (size_t)(q - t.text));
    CHECK(k > 500 && strstr(t.text, "Add 1 point") < t.text + k);
    free(out);
    srlm_judge_template_free(&t);
    CHECK(t.text == NULL);
}

static void test_render_verbatim(void) {
    char path[4200];
    snprintf(path, sizeof path, "%s/t-verbatim.txt", tmpdir);
    write_text(path,
               "# a comment with {instruction} is not a placeholder\r\n"
               "\r\n"
               "Judge {this}: Q={instruction}\r\n"
               "#another comment\r\n"
               "A={response} {{end}}\r\n"
               "\n\n");
    srlm_judge_template t;
    CHECK_OK(srlm_judge_template_load(&t, path));
    if (!t.text) return;
    CHECK_MSG(!strcmp(t.text, "Judge {this}: Q={instruction}\nA={response} {{end}}"), "got [%s]",
              t.text);

    char *out = NULL;
    const char *ins = "Explain {response} and {instruction} in C: int main() { return 0; }";
    const char *rsp = "Use {instruction}{response} literally; {} {{x}} }{";
    CHECK_OK(srlm_judge_render(&t, ins, rsp, &out));
    char want[1024];
    snprintf(want, sizeof want, "Judge {this}: Q=%s\nA=%s {{end}}", ins, rsp);
    CHECK_MSG(out && !strcmp(out, want), "got [%s]", out ? out : "(null)");
    free(out);

    /* empty texts are fine */
    CHECK_OK(srlm_judge_render(&t, "", "", &out));
    CHECK(out && !strcmp(out, "Judge {this}: Q=\nA= {{end}}"));
    free(out);

    /* the shared prefix: the same bytes for two different instructions */
    size_t k = srlm_judge_shared_prefix_len(&t);
    CHECK(k == strlen("Judge {this}: Q="));
    char *a = NULL, *b = NULL;
    CHECK_OK(srlm_judge_render(&t, "first question", "r", &a));
    CHECK_OK(srlm_judge_render(&t, "another one entirely", "r", &b));
    CHECK(a && b && !memcmp(a, b, k) && !memcmp(a, t.text, k));
    CHECK(a && b && a[k] != b[k]); /* and no more than that here */
    free(a);
    free(b);
    srlm_judge_template_free(&t);
}

/* Load must fail with SRLM_BAD_INPUT and a message containing each of `needles`. */
static void expect_refused(const char *name, const char *text, const char *needle1,
                           const char *needle2) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    if (text) write_text(path, text);
    srlm_judge_template t;
    srlm_clear_error();
    srlm_status st = srlm_judge_template_load(&t, path);
    const char *msg = srlm_last_error();
    CHECK_MSG(st == SRLM_BAD_INPUT, "%s: status %d", name, (int)st);
    CHECK(t.text == NULL);
    CHECK_MSG(strstr(msg, path) != NULL, "%s: message does not name the file: %s", name, msg);
    CHECK_MSG(strstr(msg, needle1) != NULL, "%s: no '%s' in: %s", name, needle1, msg);
    CHECK_MSG(!needle2 || strstr(msg, needle2) != NULL, "%s: no '%s' in: %s", name, needle2, msg);
}

static void test_template_refused(void) {
    expect_refused("t-no-instr.txt", "Judge this: {response}\n", "{instruction}", "no ");
    expect_refused("t-no-resp.txt", "Q: {instruction}\nA: {Response}\n", "{response}", "no ");
    expect_refused("t-commented.txt", "# {instruction}\nA: {response}\n", "{instruction}",
                   "comments");
    expect_refused("t-dup-instr.txt", "Q: {instruction}\nA: {response}\nAgain: {instruction}\n",
                   "{instruction} 2 times", "t-dup-instr.txt:3:");
    expect_refused("t-dup-resp.txt", "# c\nQ: {instruction}\n{response}{response}\n",
                   "{response} 2 times", "t-dup-resp.txt:3:");
    expect_refused("t-empty.txt", "", "no {instruction}", NULL);
    expect_refused("t-absent.txt", NULL, "cannot open", NULL);
}

/* ------------------------------------------------------------ the parser */

typedef struct {
    const char *text;
    srlm_score_verdict want;
    int score; /* for OK rows */
} score_row;

#define OK(n)  SRLM_SCORE_OK, n
#define MISS   SRLM_SCORE_MISSING, -1
#define AMB    SRLM_SCORE_AMBIGUOUS, -1
#define OOR    SRLM_SCORE_OUT_OF_RANGE, -1

static const score_row ROWS[] = {
    /* plain forms */
    {"Score: 4", OK(4)},
    {"Score: 0", OK(0)},
    {"Score: 5", OK(5)},
    {"score: 3", OK(3)},
    {"SCORE: 2", OK(2)},
    {"Score:4", OK(4)},
    {"Score : 4", OK(4)},
    {"Score = 4", OK(4)},
    {"Score - 4", OK(4)},
    {"Score \xE2\x80\x94 4", OK(4)},         /* em dash */
    {"Score\xEF\xBC\x9A 4", OK(4)},          /* full-width colon */
    {"Final score: 4", OK(4)},
    {"Total Score: 1", OK(1)},
    {"  \t Score: 4 \t  ", OK(4)},
    /* trailing text and punctuation */
    {"Score: 4.", OK(4)},
    {"Score: 4!", OK(4)},
    {"Score: 4 points", OK(4)},
    {"Score: 4 points.", OK(4)},
    {"Score: 4 (four points)", OK(4)},
    {"Score: 4 (4 points)", OK(4)},
    {"Score: [4]", OK(4)},
    {"Score: (4)", OK(4)},
    /* decimals */
    {"score: 4.0", OK(4)},
    {"Score: 2.00", OK(2)},
    {"Score: 3.5", OOR},
    {"Score: 3.5/5", OOR},
    /* denominators */
    {"Score: 4/5", OK(4)},
    {"Score: 4 / 5", OK(4)},
    {"Score: 5/5", OK(5)},
    {"Score: 0/5", OK(0)},
    {"Score: 4 out of 5", OK(4)},
    {"Score: 4 out of 5 points.", OK(4)},
    {"Score: 4/5 (4 points)", OK(4)},
    {"Score: 10/10", OOR},
    {"Score: 4/10", OOR},
    {"Score: 6/5", OOR},
    {"Score: 3 out of 10", OOR},
    /* markdown */
    {"**Score:** 4", OK(4)},
    {"**Score**: 4", OK(4)},
    {"**Score: 4**", OK(4)},
    {"Score: **4**", OK(4)},
    {"**Score: 4/5**", OK(4)},
    {"**Score:** **4**/5", OK(4)},
    {"__Score__: 3", OK(3)},
    {"*Score:* 2", OK(2)},
    {"`Score: 4`", OK(4)},
    {"## Score: 4", OK(4)},
    {"> Score: 4", OK(4)},
    {"- Score: 4", OK(4)},
    /* out of range */
    {"Score: 6", OOR},
    {"Score: -1", OOR},
    {"Score:-1", OOR},
    {"Score: 99999999999999999999999", OOR},
    {"Score: 10", OOR},
    /* ambiguous */
    {"Score: 3 or 4", AMB},
    {"Score: 3-4", AMB},
    {"Score: 0-5", AMB},
    {"Score: 4,5", AMB},
    {"Score: 3. Final score: 4", AMB},
    {"Score: 4 (criteria 1-4)", AMB},
    {"Score: 4/5 (80%)", AMB},
    {"Score: 4/5 (2/5 for style)", AMB},
    {"Score: 4. Score: 4", OK(4)}, /* agreeing repeats are fine */
    /* missing */
    {"", MISS},
    {"Score:", MISS},
    {"Score:   \n4", MISS},                  /* the number must be on the marker's line */
    {"Score: N/A", MISS},
    {"Score: four", MISS},
    {"Score: <0-5>", MISS},
    {"The answer is good. I give it 4.", MISS},
    {"Score 4", MISS},                       /* no separator */
    {"Score -1", MISS},                      /* a dash separator needs a blank after it */
    {"Scores: 3, 4", MISS},                  /* plural is not a marker */
    {"It scored: 4", MISS},
    {"Underscore: 4", MISS},                 /* not a word of its own */
    {"| Score | 4 |", MISS},
    {"Score: 3\n\nScore:", MISS},             /* the last marker decides, even when empty */
    /* the last marker decides */
    {"Score: 2\nOn reflection, more is deserved.\nScore: 3", OK(3)},
    {"I will score using the rubric, Score: 0-5.\n"
     "The response is relevant (+1), covers most of the question (+1) and is useful (+1).\n"
     "Its score is therefore three.\n"
     "Score: 3",
     OK(3)},
    {"The response addresses the user's question and earns the first point. It answers the\n"
     "basic elements (third point) but the score cannot reach 4 because it is not written\n"
     "as an assistant would. A score of 5 would need expert tailoring.\n"
     "\n"
     "**Score: 3/5**\n",
     OK(3)},
    {"Score: 4\n\nThis score reflects the points above.", OK(4)}, /* no separator later */
    {"Score: 3\n(rubric reminder: Score: 0-5)", AMB},
    {"Numbers before the marker on the line do not count: 1, 2, 3 -> Score: 3", OK(3)},
    /* line endings and non-ASCII */
    {"Justification: fine.\r\nScore: 4\r\n", OK(4)},
    {"Justification.\r\n\r\n**Score:** 5\r\n", OK(5)},
    {"R\xC3\xA9ponse tr\xC3\xA8s claire \xE2\x9C\x85\nScore: 5 \xE2\xAD\x90\xE2\xAD\x90", OK(5)},
    {"Score:\xC2\xA0" "4", OK(4)},           /* no-break space */
    {"\xE2\x80\x9CScore: 2\xE2\x80\x9D", OK(2)},     /* curly quotes */
    {"\xC3\xA9score: 4", OK(4)},              /* a non-ASCII letter before is a boundary */
};

static void test_score_table(void) {
    int n = (int)(sizeof ROWS / sizeof ROWS[0]);
    CHECK(n >= 40);
    for (int i = 0; i < n; i++) {
        int score = 77;
        srlm_score_verdict v = srlm_judge_parse_score(ROWS[i].text, strlen(ROWS[i].text), &score);
        int want_score = ROWS[i].want == SRLM_SCORE_OK ? ROWS[i].score : -1;
        CHECK_MSG(v == ROWS[i].want && score == want_score,
                  "row %d [%s]: got %s %d, want %s %d", i, ROWS[i].text,
                  srlm_score_verdict_name(v), score, srlm_score_verdict_name(ROWS[i].want),
                  want_score);
    }
}

static void test_score_edges(void) {
    int score = 9;
    /* NULL text, NULL score */
    CHECK(srlm_judge_parse_score(NULL, 0, &score) == SRLM_SCORE_MISSING && score == -1);
    CHECK(srlm_judge_parse_score("Score: 4", 8, NULL) == SRLM_SCORE_OK);
    /* len is honoured: the text need not end at a NUL */
    CHECK(srlm_judge_parse_score("Score: 45", 8, &score) == SRLM_SCORE_OK && score == 4);
    CHECK(srlm_judge_parse_score("Score: 4", 6, &score) == SRLM_SCORE_MISSING);
    /* a NUL is an ordinary byte: both markers are on one line here */
    const char with_nul[] = "Score: 2\0Score: 3";
    CHECK(srlm_judge_parse_score(with_nul, sizeof with_nul - 1, &score) == SRLM_SCORE_AMBIGUOUS);
    const char with_nul2[] = "Score: 2\0\nScore: 3";
    CHECK(srlm_judge_parse_score(with_nul2, sizeof with_nul2 - 1, &score) == SRLM_SCORE_OK &&
          score == 3);

    /* a very long judgement: earlier restated scores, the final line decides */
    size_t cap = 2u << 20, n = 0;
    char *big = malloc(cap);
    while (n + 100 < cap - 64)
        n += (size_t)snprintf(big + n, cap - n, "The rubric asks for a Score: 0-5; score %zu.\n",
                              n % 7);
    n += (size_t)snprintf(big + n, cap - n, "\n**Score:** 2\n");
    CHECK(srlm_judge_parse_score(big, n, &score) == SRLM_SCORE_OK && score == 2);
    /* and without the final line, the restatement decides: ambiguous */
    CHECK(srlm_judge_parse_score(big, n - strlen("\n**Score:** 2\n"), &score) ==
          SRLM_SCORE_AMBIGUOUS);
    free(big);

    CHECK(!strcmp(srlm_score_verdict_name(SRLM_SCORE_OK), "ok"));
    CHECK(!strcmp(srlm_score_verdict_name(SRLM_SCORE_MISSING), "missing"));
    CHECK(!strcmp(srlm_score_verdict_name(SRLM_SCORE_AMBIGUOUS), "ambiguous"));
    CHECK(!strcmp(srlm_score_verdict_name(SRLM_SCORE_OUT_OF_RANGE), "out_of_range"));
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "%s/judge-%d", test_env("SRLM_TMP", "/tmp"), (int)getpid());
    mkdir(test_env("SRLM_TMP", "/tmp"), 0755);
    if (mkdir(tmpdir, 0755) != 0) {
        fprintf(stderr, "cannot create %s\n", tmpdir);
        return 1;
    }
    test_shipped_template();
    test_render_verbatim();
    test_template_refused();
    test_score_table();
    test_score_edges();
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    TEST_DONE();
}
