/* Self-instruct helpers (src/pipeline/self_instruct.c): few-shot choice
 * (deterministic, distinct, IFT fallback, shuffled, different per item), the
 * template (shipped file = built-in copy, exact rendering, errors that name the
 * file), the extraction of the new task from a reply (a table), the blocklist
 * (whole words, phrases, file format) and the filter (a table with every
 * verdict, accepted candidates joining the known prompts, order). */
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pipeline/self_instruct.h"
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

/* ------------------------------------------------------------ few-shot choice */

#define MAX_SHOTS 64

typedef struct {
    srlm_si_shot s[MAX_SHOTS];
    int n;
} shots_t;

static shots_t pick(int n_ift, int n_prev, int k_ift, int k_gen, uint64_t seed, uint64_t item) {
    shots_t r;
    memset(&r, 0xAB, sizeof r); /* garbage, so unwritten entries show */
    r.n = -1;
    CHECK_OK(srlm_si_pick_shots(n_ift, n_prev, k_ift, k_gen, seed, item, r.s, &r.n));
    return r;
}

static int same_shots(const shots_t *a, const shots_t *b) {
    if (a->n != b->n) return 0;
    for (int i = 0; i < a->n; i++)
        if (a->s[i].from_prev != b->s[i].from_prev || a->s[i].index != b->s[i].index) return 0;
    return 1;
}

/* n entries, want_ift from IFT and want_prev from prev, in range, distinct per pool. */
static void check_shape(const shots_t *r, int n_ift, int n_prev, int want_ift, int want_prev,
                        const char *what) {
    CHECK_MSG(r->n == want_ift + want_prev, "%s: %d shots, want %d", what, r->n,
              want_ift + want_prev);
    int got_ift = 0, got_prev = 0;
    for (int i = 0; i < r->n && i < MAX_SHOTS; i++) {
        const srlm_si_shot *s = &r->s[i];
        CHECK_MSG(s->from_prev == 0 || s->from_prev == 1, "%s: from_prev %d", what, s->from_prev);
        int lim = s->from_prev ? n_prev : n_ift;
        CHECK_MSG(s->index >= 0 && s->index < lim, "%s: index %d outside [0, %d)", what,
                  s->index, lim);
        *(s->from_prev ? &got_prev : &got_ift) += 1;
        for (int j = 0; j < i; j++)
            CHECK_MSG(!(r->s[j].from_prev == s->from_prev && r->s[j].index == s->index),
                      "%s: shot %d repeats shot %d", what, i, j);
    }
    CHECK_MSG(got_ift == want_ift && got_prev == want_prev, "%s: %d IFT + %d prev, want %d + %d",
              what, got_ift, got_prev, want_ift, want_prev);
}

static void test_shots(void) {
    /* the paper's setting, later iteration: 6 IFT + 2 previous */
    shots_t a = pick(3200, 500, 6, 2, 42, 7);
    check_shape(&a, 3200, 500, 6, 2, "6+2");
    shots_t a2 = pick(3200, 500, 6, 2, 42, 7);
    CHECK_MSG(same_shots(&a, &a2), "same inputs gave different shots");

    /* iteration 1: no previous prompts, all 8 from IFT */
    shots_t b = pick(3200, 0, 6, 2, 42, 7);
    check_shape(&b, 3200, 0, 8, 0, "iteration 1");
    /* one previous prompt: 1 from it, 7 from IFT */
    shots_t c = pick(3200, 1, 6, 2, 42, 7);
    check_shape(&c, 3200, 1, 7, 1, "one previous prompt");
    CHECK(c.n == 8 && (c.s[0].from_prev || c.s[1].from_prev || c.s[2].from_prev ||
                       c.s[3].from_prev || c.s[4].from_prev || c.s[5].from_prev ||
                       c.s[6].from_prev || c.s[7].from_prev));
    /* pools too small: everything there is, nothing repeated */
    shots_t d = pick(5, 1, 6, 2, 42, 7);
    check_shape(&d, 5, 1, 5, 1, "small pools");
    shots_t e = pick(3, 0, 6, 2, 42, 7);
    check_shape(&e, 3, 0, 3, 0, "tiny IFT pool");
    shots_t f = pick(8, 0, 6, 2, 42, 7); /* exactly all of IFT: a permutation of 0..7 */
    check_shape(&f, 8, 0, 8, 0, "whole IFT pool");
    shots_t g = pick(0, 0, 6, 2, 42, 7);
    CHECK(g.n == 0);
    shots_t h = pick(100, 100, 0, 3, 42, 7); /* the previous prompts never fill in for IFT */
    check_shape(&h, 100, 100, 0, 3, "no IFT shots");
    shots_t h2 = pick(0, 100, 6, 2, 42, 7);
    check_shape(&h2, 0, 100, 0, 2, "empty IFT pool");

    /* different items (and seeds) get different shots; the same item is stable */
    shots_t i0 = pick(3200, 500, 6, 2, 42, 0), i1 = pick(3200, 500, 6, 2, 42, 1);
    CHECK_MSG(!same_shots(&i0, &i1), "items 0 and 1 got the same shots");
    shots_t s1 = pick(3200, 500, 6, 2, 43, 0);
    CHECK_MSG(!same_shots(&i0, &s1), "seeds 42 and 43 gave the same shots");

    /* over many items: every index is used, about uniformly, and the previous
     * prompts appear at every position (the order is shuffled) */
    enum { N_IFT = 10, N_PREV = 4, ITEMS = 4000 };
    int use_ift[N_IFT] = {0}, use_prev[N_PREV] = {0}, prev_at[8] = {0}, distinct_sets = 0;
    shots_t last = pick(N_IFT, N_PREV, 6, 2, 9, 0);
    for (uint64_t it = 0; it < ITEMS; it++) {
        shots_t r = pick(N_IFT, N_PREV, 6, 2, 9, it);
        if (r.n != 8) {
            CHECK_MSG(0, "item %llu: %d shots", (unsigned long long)it, r.n);
            break;
        }
        for (int k = 0; k < 8; k++) {
            if (r.s[k].from_prev) {
                use_prev[r.s[k].index]++;
                prev_at[k]++;
            } else {
                use_ift[r.s[k].index]++;
            }
        }
        if (!same_shots(&r, &last)) distinct_sets++;
        last = r;
    }
    for (int k = 0; k < N_IFT; k++) /* expected 4000 * 6/10 = 2400 */
        CHECK_MSG(use_ift[k] > 2150 && use_ift[k] < 2650, "IFT %d used %d times, want ~2400", k,
                  use_ift[k]);
    for (int k = 0; k < N_PREV; k++) /* expected 4000 * 2/4 = 2000 */
        CHECK_MSG(use_prev[k] > 1800 && use_prev[k] < 2200, "prev %d used %d times, want ~2000",
                  k, use_prev[k]);
    for (int k = 0; k < 8; k++) /* expected 4000 * 2/8 = 1000 */
        CHECK_MSG(prev_at[k] > 850 && prev_at[k] < 1150,
                  "a previous prompt at position %d %d times, want ~1000", k, prev_at[k]);
    CHECK_MSG(distinct_sets > ITEMS * 9 / 10, "only %d item-to-item changes", distinct_sets);

    /* bad input */
    srlm_si_shot tmp[8];
    int n = 99;
    CHECK(srlm_si_pick_shots(-1, 0, 6, 2, 1, 0, tmp, &n) == SRLM_BAD_INPUT && n == 0);
    CHECK(srlm_si_pick_shots(10, 0, 6, -2, 1, 0, tmp, &n) == SRLM_BAD_INPUT);
    CHECK(srlm_si_pick_shots(10, 0, 6, 2, 1, 0, NULL, &n) == SRLM_BAD_INPUT);
}

/* ------------------------------------------------------------------ template */

static void test_shipped_template(void) {
    char path[4200];
    snprintf(path, sizeof path, "%s/configs/prompts/self_instruct.txt",
             test_env("SRLM_SOURCE_DIR", "."));
    srlm_si_template file, builtin, empty;
    CHECK_OK(srlm_si_template_load(&file, path));
    CHECK_OK(srlm_si_template_load(&builtin, NULL));
    CHECK_OK(srlm_si_template_load(&empty, ""));
    if (!file.text || !builtin.text || !empty.text) return;
    CHECK_MSG(!strcmp(file.text, builtin.text),
              "configs/prompts/self_instruct.txt and the built-in copy differ:\n[%s]\nvs\n[%s]",
              file.text, builtin.text);
    CHECK(!strcmp(empty.text, builtin.text));
    CHECK(file.text[0] != '#' && !strstr(file.text, "\n#"));
    CHECK(file.text[strlen(file.text) - 1] != '\n');

    const char *shots[] = {"Write a haiku about autumn.", "How do\n  vaccines work?"};
    char *out = NULL;
    CHECK_OK(srlm_si_render(&file, shots, 2, &out));
    CHECK_MSG(out && strstr(out, "\n\n1. Write a haiku about autumn.\n2. How do vaccines work?\n\n"),
              "got [%s]", out ? out : "(null)");
    CHECK(out && !strstr(out, SRLM_SI_PH_EXAMPLES));
    free(out);
    srlm_si_template_free(&file);
    srlm_si_template_free(&builtin);
    srlm_si_template_free(&empty);
    CHECK(file.text == NULL);
}

static void test_render_exact(void) {
    char path[4200];
    snprintf(path, sizeof path, "%s/si-exact.txt", tmpdir);
    write_text(path,
               "# comment with {examples} does not count\r\n"
               "\r\n"
               "Tasks {so far}:\r\n"
               "{examples}\r\n"
               "#another\r\n"
               "Now one more {{x}}.\r\n\n\n");
    srlm_si_template t;
    CHECK_OK(srlm_si_template_load(&t, path));
    if (!t.text) return;
    CHECK_MSG(!strcmp(t.text, "Tasks {so far}:\n{examples}\nNow one more {{x}}."), "got [%s]",
              t.text);

    const char *shots[] = {"  Say {examples}  twice\r\n\tplease ", "b", "x\ny"};
    char *out = NULL;
    CHECK_OK(srlm_si_render(&t, shots, 3, &out));
    const char *want = "Tasks {so far}:\n1. Say {examples} twice please\n2. b\n3. x y\n"
                       "Now one more {{x}}.";
    CHECK_MSG(out && !strcmp(out, want), "got [%s]", out ? out : "(null)");
    free(out);

    /* ten shots: two-digit numbers */
    const char *ten[10] = {"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"};
    CHECK_OK(srlm_si_render(&t, ten, 10, &out));
    CHECK_MSG(out && strstr(out, ":\n1. a\n2. b\n") && strstr(out, "\n9. i\n10. j\nNow"), "got [%s]",
              out ? out : "(null)");
    free(out);

    CHECK_OK(srlm_si_render(&t, NULL, 0, &out));
    CHECK(out && !strcmp(out, "Tasks {so far}:\n\nNow one more {{x}}."));
    free(out);

    const char *bad[] = {"a", NULL};
    CHECK(srlm_si_render(&t, bad, 2, &out) == SRLM_BAD_INPUT && out == NULL);
    srlm_si_template_free(&t);
    CHECK(srlm_si_render(&t, shots, 1, &out) == SRLM_BAD_INPUT);
}

static void expect_template_error(const char *name, const char *text, const char *want1,
                                  const char *want2) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    if (text) write_text(path, text);
    srlm_si_template t;
    t.text = (char *)"not reset";
    srlm_status st = srlm_si_template_load(&t, path);
    CHECK_MSG(st == SRLM_BAD_INPUT, "%s: status %d", name, (int)st);
    CHECK(t.text == NULL);
    const char *msg = srlm_last_error();
    CHECK_MSG(strstr(msg, path) != NULL, "%s: message does not name the file: %s", name, msg);
    CHECK_MSG(strstr(msg, want1) != NULL, "%s: message lacks \"%s\": %s", name, want1, msg);
    if (want2) CHECK_MSG(strstr(msg, want2) != NULL, "%s: message lacks \"%s\": %s", name, want2, msg);
}

static void test_template_errors(void) {
    char both[4300];
    expect_template_error("si-none.txt", "Write a task.\n", "no {examples}", NULL);
    expect_template_error("si-comment-only.txt", "# {examples}\nWrite a task.\n", "no {examples}",
                          NULL);
    snprintf(both, sizeof both, "%s/si-two.txt:4", tmpdir); /* the second one's line */
    expect_template_error("si-two.txt", "# c\n{examples}\n\nmore {examples} here\n", both,
                          "2 times");
    expect_template_error("si-missing.txt", NULL, "cannot open", NULL);
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/si-dir.txt", tmpdir);
    mkdir(dir, 0700); /* a directory opens but does not read */
    expect_template_error("si-dir.txt", NULL, "cannot read", NULL);
}

/* ---------------------------------------------------------------- extraction */

static void test_extract(void) {
    static const struct {
        const char *reply, *want; /* want NULL: nothing */
    } rows[] = {
        {"Write a limerick about a cat.", "Write a limerick about a cat."},
        {"  \t Write a limerick.  \n", "Write a limerick."},
        {"\n\n   \r\nList three uses of copper.\r\n", "List three uses of copper."},
        {"9. Name five rivers in Asia.", "Name five rivers in Asia."},
        {"9) Name five rivers.", "Name five rivers."},
        {"(10) Name five rivers.", "Name five rivers."},
        {"12: Name five rivers.", "Name five rivers."},
        {"- Name five rivers.", "Name five rivers."},
        {"* Name five rivers.", "Name five rivers."},
        {"\xe2\x80\xa2 Name five rivers.", "Name five rivers."},
        {"## Name five rivers.", "Name five rivers."},
        {"Task 9: Name five rivers.", "Name five rivers."},
        {"New task #3: Name five rivers.", "Name five rivers."},
        {"Instruction: Name five rivers.", "Name five rivers."},
        {"**Task 9:** Name five rivers.", "Name five rivers."},
        {"**New Instruction**: Name five rivers.", "Name five rivers."},
        {"- 9. Task: Name five rivers.", "Name five rivers."},
        {"**Name five rivers.**", "Name five rivers."},
        {"\"Name five rivers.\"", "Name five rivers."},
        {"\xe2\x80\x9cName five rivers.\xe2\x80\x9d", "Name five rivers."},
        {"\"Hamlet\" or \"Macbeth\": which is longer?", "\"Hamlet\" or \"Macbeth\": which is longer?"},
        {"Compare \"Hamlet\" and \"Macbeth\"", "Compare \"Hamlet\" and \"Macbeth\""},
        {"\"Hamlet\" and \"Macbeth\"", "\"Hamlet\" and \"Macbeth\""}, /* not one pair */
        {"Name five rivers.\nThen rank them by length.", "Name five rivers."},
        {"Task 9:\nName five rivers.\n10. Another one.", "Name five rivers."},
        {"Sure! Here is a new request:\n\nName five rivers.", "Name five rivers."},
        {"9.5 percent of what number is 19?", "9.5 percent of what number is 19?"},
        {"-5 degrees in Fahrenheit?", "-5 degrees in Fahrenheit?"},
        {"Tasks for a weekend trip: plan one.", "Tasks for a weekend trip: plan one."},
        {"1234. Count to ten.", "1234. Count to ten."}, /* not a list number (4 digits) */
        {"\xc2\xa0Name five rivers.\xc2\xa0", "Name five rivers."},
        {"", NULL},
        {"   \n\t\n  ", NULL},
        {"9.\n-\n**\n", NULL},
        {"Here is one:", NULL},
    };
    int n = (int)(sizeof rows / sizeof *rows);
    for (int i = 0; i < n; i++) {
        char *out = (char *)"not reset";
        CHECK_OK(srlm_si_extract(rows[i].reply, strlen(rows[i].reply), &out));
        if (rows[i].want)
            CHECK_MSG(out && !strcmp(out, rows[i].want), "row %d: [%s] -> [%s], want [%s]", i,
                      rows[i].reply, out ? out : "(null)", rows[i].want);
        else
            CHECK_MSG(out == NULL, "row %d: [%s] -> [%s], want nothing", i, rows[i].reply,
                      out ? out : "(null)");
        free(out);
    }
    /* len is honoured (not NUL-terminated input), and reading stops at a NUL */
    char *out = NULL;
    CHECK_OK(srlm_si_extract("Name five rivers.XYZ", 17, &out));
    CHECK(out && !strcmp(out, "Name five rivers."));
    free(out);
    CHECK_OK(srlm_si_extract("Name rivers\0hidden", 18, &out));
    CHECK(out && !strcmp(out, "Name rivers"));
    free(out);
    CHECK_OK(srlm_si_extract("\0Name rivers", 12, &out));
    CHECK(out == NULL);
    CHECK_OK(srlm_si_extract(NULL, 0, &out));
    CHECK(out == NULL);
}

/* ----------------------------------------------------------------- blocklist */

static void test_blocklist(void) {
    srlm_si_blocklist b;
    CHECK_OK(srlm_si_blocklist_load(&b, NULL));
    CHECK(b.n == 18);

    /* the shipped file is the built-in list */
    char path[4200];
    snprintf(path, sizeof path, "%s/configs/prompts/blocklist.txt", test_env("SRLM_SOURCE_DIR", "."));
    srlm_si_blocklist f;
    CHECK_OK(srlm_si_blocklist_load(&f, path));
    CHECK_MSG(f.n == b.n, "file has %d keywords, built-in %d", f.n, b.n);
    for (int i = 0; i < f.n && i < b.n; i++)
        CHECK_MSG(!strcmp(f.words[i], b.words[i]), "keyword %d: [%s] vs [%s]", i, f.words[i],
                  b.words[i]);
    srlm_si_blocklist_free(&f);

    static const struct {
        const char *text, *want; /* the keyword found, NULL for none */
    } rows[] = {
        {"Draw a map of Europe.", "map"}, /* the first keyword in LIST order: "map" before "draw" */
        {"Describe a mapping between sets.", NULL},
        {"Explain what a roadmap is.", NULL},
        {"MAP the terrain", "map"},
        {"Which maps are best?", "maps"},
        {"Print the map.", "map"},
        {"(map)", "map"},
        {"How do I go to the station?", "go to"},
        {"How do I go\n\t to the station?", "go to"},
        {"Why is goto harmful?", NULL},
        {"I ago tomorrow", NULL},
        {"Write a sonnet about the sea.", NULL},
        {"Compose a short melody.", NULL},
        {"Play some music for me", "music"},
        {"an image_file", NULL}, /* '_' is a word character */
        {"", NULL},
    };
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        int k = srlm_si_blocked(&b, rows[i].text);
        const char *got = k >= 0 && k < b.n ? b.words[k] : NULL;
        CHECK_MSG((got == NULL) == (rows[i].want == NULL) && (!got || !strcmp(got, rows[i].want)),
                  "[%s]: got %s, want %s", rows[i].text, got ? got : "(none)",
                  rows[i].want ? rows[i].want : "(none)");
    }
    int kmap = srlm_si_blocked(&b, "a map and a drawing"); /* "drawing" is not "draw" */
    CHECK(kmap >= 0 && !strcmp(b.words[kmap], "map"));
    CHECK(srlm_si_blocked(NULL, "Draw a map") == -1);
    CHECK(srlm_si_blocked(&b, NULL) == -1);
    srlm_si_blocklist_free(&b);
    CHECK(b.n == 0 && b.words == NULL);

    /* file format: comments, blank lines, case, inner and outer white space, CRLF */
    snprintf(path, sizeof path, "%s/si-block.txt", tmpdir);
    write_text(path, "# a comment: map\r\n\r\n   # indented comment\n  Hot   DOG \r\nC++\n\t\n#x");
    CHECK_OK(srlm_si_blocklist_load(&f, path));
    CHECK_MSG(f.n == 2, "%d keywords", f.n);
    if (f.n == 2) {
        CHECK(!strcmp(f.words[0], "hot dog") && !strcmp(f.words[1], "c++"));
        CHECK(srlm_si_blocked(&f, "Cook a HOT\tdog now") == 0);
        CHECK(srlm_si_blocked(&f, "hot dogs") == -1);
        CHECK(srlm_si_blocked(&f, "Learn C++ fast") == 1);
        CHECK(srlm_si_blocked(&f, "Learn C++, fast") == 1);
        CHECK(srlm_si_blocked(&f, "Draw a map") == -1);
    }
    srlm_si_blocklist_free(&f);

    /* non-ASCII keywords match too (their bytes were compared as negative chars;
     * found by fuzz_si_blocklist) */
    snprintf(path, sizeof path, "%s/si-block-utf8.txt", tmpdir);
    write_text(path, "Caf\xc3\xa9\n\xc3\x89T\xc3\x89\n");
    CHECK_OK(srlm_si_blocklist_load(&f, path));
    CHECK_MSG(f.n == 2 && srlm_si_blocked(&f, "Order a caf\xc3\xa9 au lait") == 0 &&
                  srlm_si_blocked(&f, "\xc3\x89T\xc3\x89 plans") == 1 && srlm_si_blocked(&f, "cafe") == -1,
              "%d keywords", f.n);
    srlm_si_blocklist_free(&f);

    snprintf(path, sizeof path, "%s/si-block-empty.txt", tmpdir);
    write_text(path, "# nothing\n\n");
    CHECK_OK(srlm_si_blocklist_load(&f, path));
    CHECK(f.n == 0 && srlm_si_blocked(&f, "Draw a map") == -1);
    srlm_si_blocklist_free(&f);

    snprintf(path, sizeof path, "%s/si-block-missing.txt", tmpdir);
    CHECK(srlm_si_blocklist_load(&f, path) == SRLM_BAD_INPUT);
    CHECK_MSG(strstr(srlm_last_error(), path) && strstr(srlm_last_error(), "cannot open"), "%s",
              srlm_last_error());
}

/* -------------------------------------------------------------------- filter */

static void test_filter_table(void) {
    srlm_si_blocklist b;
    CHECK_OK(srlm_si_blocklist_load(&b, NULL));
    const char *pool[] = {
        "Write a poem about the sea.",
        "Explain how photosynthesis works in plants.",
        "What is the capital city of France?",
    };
    const int NP = 3;
    static const struct {
        const char *text;
        srlm_si_verdict want;
        int match; /* -2: not checked */
    } rows[] = {
        /*  0 */ {NULL, SRLM_SI_EMPTY, -1},
        /*  1 */ {" \t\n ", SRLM_SI_EMPTY, -1},
        /*  2 */ {"Hi there", SRLM_SI_TOO_SHORT, -1},
        /*  3 */ {"one two three four five six seven eight nine ten eleven twelve thirteen",
                  SRLM_SI_TOO_LONG, -1},
        /*  4 */ {"one two three four five six seven eight nine ten eleven twelve",
                  SRLM_SI_KEEP, -1}, /* exactly max_words */
        /*  5 */ {"Why  not?\n ok", SRLM_SI_KEEP, -1}, /* exactly min_words */
        /*  6 */ {"...what is this thing here", SRLM_SI_NOT_TEXT, -1},
        /*  7 */ {"1234 5678 9012 345 x", SRLM_SI_NOT_TEXT, -1},
        /*  8 */ {"Draw a cat riding a bicycle.", SRLM_SI_BLOCKED, 10},
        /*  9 */ {"Describe a mapping between two sets.", SRLM_SI_KEEP, -1},
        /* 10 */ {"what is the   CAPITAL city of france?  ", SRLM_SI_DUPLICATE, 2},
        /* 11 */ {"Explain how photosynthesis works in green plants.", SRLM_SI_SIMILAR, 1},
        /* 12 */ {"Suggest three names for a pet turtle.", SRLM_SI_KEEP, -1},
        /* 13 */ {"Suggest three names for a pet tortoise.", SRLM_SI_SIMILAR, NP + 12},
        /* 14 */ {"suggest three NAMES for a pet turtle.", SRLM_SI_DUPLICATE, NP + 12},
        /* 15 */ {"\xc3\x89" "cris un po\xc3\xa8me sur la mer, s'il te pla\xc3\xaet",
                  SRLM_SI_KEEP, -1}, /* non-ASCII letters count as letters */
        /* 16 */ {"x = 1 + 2 * (3 - 4);", SRLM_SI_NOT_TEXT, -1},
        /* 17 */ {"\xe2\x82\xac 123456 \xe2\x82\xac\xe2\x82\xac", SRLM_SI_NOT_TEXT, -1},
                 /* characters, not bytes: 3 "letters" of 9 */
    };
    enum { N = (int)(sizeof rows / sizeof *rows) };
    const char *cands[N];
    for (int i = 0; i < N; i++) cands[i] = rows[i].text;
    srlm_si_filter_opts o = {0.7, 1, 3, 12, &b};
    srlm_si_check checks[N];
    int counts[SRLM_SI_N_VERDICTS];
    CHECK_OK(srlm_si_filter(&o, pool, NP, cands, N, checks, counts));
    int want_counts[SRLM_SI_N_VERDICTS] = {0};
    for (int i = 0; i < N; i++) {
        want_counts[rows[i].want]++;
        CHECK_MSG(checks[i].verdict == rows[i].want, "row %d [%s]: %s, want %s", i,
                  rows[i].text ? rows[i].text : "(null)", srlm_si_verdict_name(checks[i].verdict),
                  srlm_si_verdict_name(rows[i].want));
        if (rows[i].match != -2)
            CHECK_MSG(checks[i].match == rows[i].match, "row %d: match %d, want %d", i,
                      checks[i].match, rows[i].match);
        /* ROUGE only for the candidates that reach it */
        int reached = rows[i].want == SRLM_SI_KEEP || rows[i].want == SRLM_SI_SIMILAR;
        if (!reached) CHECK_MSG(checks[i].rouge == -1, "row %d: rouge %g", i, checks[i].rouge);
        if (rows[i].want == SRLM_SI_KEEP)
            CHECK_MSG(checks[i].rouge >= 0 && checks[i].rouge <= 0.7, "row %d: rouge %g", i,
                      checks[i].rouge);
        if (rows[i].want == SRLM_SI_SIMILAR)
            CHECK_MSG(checks[i].rouge > 0.7 && checks[i].rouge < 1, "row %d: rouge %g", i,
                      checks[i].rouge);
    }
    for (int v = 0; v < SRLM_SI_N_VERDICTS; v++) {
        CHECK_MSG(counts[v] == want_counts[v], "%s: %d, want %d", srlm_si_verdict_name(v),
                  counts[v], want_counts[v]);
        CHECK_MSG(want_counts[v] > 0, "the table lacks verdict %s", srlm_si_verdict_name(v));
    }

    /* without a blocklist nothing is blocked; counts may be NULL */
    o.blocklist = NULL;
    CHECK_OK(srlm_si_filter(&o, pool, NP, cands, N, checks, NULL));
    CHECK(checks[8].verdict == SRLM_SI_KEEP && checks[8].match == -1);
    srlm_si_blocklist_free(&b);
}

static void test_filter_order_and_bounds(void) {
    srlm_si_filter_opts o = {0.7, 1, 1, 100, NULL};
    const char *ab[] = {"Suggest three names for a pet turtle.", "Suggest three names for a pet tortoise."};
    const char *ba[] = {ab[1], ab[0]};
    srlm_si_check c[2];
    /* no known prompts: the first candidate is always new, the second is then a near-copy */
    CHECK_OK(srlm_si_filter(&o, NULL, 0, ab, 2, c, NULL));
    CHECK(c[0].verdict == SRLM_SI_KEEP && c[0].rouge == 0 && c[1].verdict == SRLM_SI_SIMILAR &&
          c[1].match == 0);
    CHECK_OK(srlm_si_filter(&o, NULL, 0, ba, 2, c, NULL));
    CHECK(c[0].verdict == SRLM_SI_KEEP && c[1].verdict == SRLM_SI_SIMILAR && c[1].match == 0);
    /* a rejected candidate does not join the known prompts */
    const char *pool[] = {"Suggest three names for a pet turtle."};
    const char *rej[] = {ab[1], "Suggest three names for a pet tortoise please."};
    CHECK_OK(srlm_si_filter(&o, pool, 1, rej, 2, c, NULL));
    CHECK(c[0].verdict == SRLM_SI_SIMILAR && c[0].match == 0 && c[1].verdict == SRLM_SI_SIMILAR &&
          c[1].match == 0);

    /* the bound is strict: F = 0.75 exactly (LCS 3 of 4 and 4 tokens) */
    const char *p2[] = {"alpha beta gamma delta"};
    const char *c2[] = {"alpha beta gamma omega"};
    o.rouge_l_max = 0.75;
    CHECK_OK(srlm_si_filter(&o, p2, 1, c2, 1, c, NULL));
    CHECK_MSG(c[0].verdict == SRLM_SI_KEEP && c[0].rouge == 0.75, "%s %g",
              srlm_si_verdict_name(c[0].verdict), c[0].rouge);
    o.rouge_l_max = 0.74;
    CHECK_OK(srlm_si_filter(&o, p2, 1, c2, 1, c, NULL));
    CHECK(c[0].verdict == SRLM_SI_SIMILAR && c[0].match == 0);
    /* rouge_l_max 1: only exact (normalised) duplicates go; ROUGE-L is not computed */
    const char *c3[] = {"alpha beta gamma delta!", "ALPHA  beta gamma delta"};
    o.rouge_l_max = 1;
    CHECK_OK(srlm_si_filter(&o, p2, 1, c3, 2, c, NULL));
    CHECK(c[0].verdict == SRLM_SI_KEEP && c[0].rouge == -1 && c[1].verdict == SRLM_SI_DUPLICATE &&
          c[1].match == 0);

    /* max_copies 3: a text is kept while fewer than 3 equal ones are known (the
     * pool's copy counts); the permitted copy skips ROUGE-L, which it would fail */
    const char *p4[] = {"Name a word that starts with k", "Name a word that starts with m"};
    const char *c4[] = {"name a word that starts with K", "Name a word  that starts with k",
                        "Name a word that starts with k", "Name a word that starts with m",
                        "Name a word that starts with n"};
    o.rouge_l_max = 0.7;
    o.max_copies = 3;
    srlm_si_check c5[5];
    int cnt4[SRLM_SI_N_VERDICTS];
    CHECK_OK(srlm_si_filter(&o, p4, 2, c4, 5, c5, cnt4));
    CHECK_MSG(c5[0].verdict == SRLM_SI_KEEP && c5[0].rouge == -1 && c5[1].verdict == SRLM_SI_KEEP &&
              c5[2].verdict == SRLM_SI_DUPLICATE && c5[2].match == 0 && c5[3].verdict == SRLM_SI_KEEP &&
              c5[4].verdict == SRLM_SI_SIMILAR && c5[4].match == 0,
              "%s %s %s %s %s", srlm_si_verdict_name(c5[0].verdict), srlm_si_verdict_name(c5[1].verdict),
              srlm_si_verdict_name(c5[2].verdict), srlm_si_verdict_name(c5[3].verdict),
              srlm_si_verdict_name(c5[4].verdict));
    CHECK(cnt4[SRLM_SI_KEEP] == 3 && cnt4[SRLM_SI_DUPLICATE] == 1 && cnt4[SRLM_SI_SIMILAR] == 1);
    /* max_copies below 1 counts as 1 */
    o.max_copies = 0;
    CHECK_OK(srlm_si_filter(&o, p4, 2, c4, 1, c5, NULL));
    CHECK(c5[0].verdict == SRLM_SI_DUPLICATE && c5[0].match == 0);
    o.max_copies = 1;

    /* bad arguments */
    int counts[SRLM_SI_N_VERDICTS];
    o.min_words = 5, o.max_words = 4;
    CHECK(srlm_si_filter(&o, p2, 1, c2, 1, c, counts) == SRLM_BAD_INPUT);
    o.min_words = 1, o.max_words = 4;
    const char *bad_pool[] = {"a", NULL};
    CHECK(srlm_si_filter(&o, bad_pool, 2, c2, 1, c, counts) == SRLM_BAD_INPUT);
    CHECK(srlm_si_filter(&o, p2, 1, c2, 1, NULL, counts) == SRLM_BAD_INPUT);
    CHECK(srlm_si_filter(&o, p2, -1, c2, 1, c, counts) == SRLM_BAD_INPUT);

    CHECK(!strcmp(srlm_si_verdict_name(SRLM_SI_KEEP), "keep"));
    CHECK(!strcmp(srlm_si_verdict_name(SRLM_SI_SIMILAR), "similar"));
    CHECK(!strcmp(srlm_si_verdict_name(SRLM_SI_N_VERDICTS), "?"));
}

/* Many candidates against a large pool: every accepted one is pairwise novel. */
static void test_filter_many(void) {
    enum { NP = 300, NC = 600 };
    static char pool_buf[NP][64], cand_buf[NC][64];
    const char *pool[NP], *cands[NC];
    static const char *const w[] = {"river", "mountain", "poem", "recipe", "history", "planet",
                                    "engine", "garden",  "music", "theory", "ocean",  "city"};
    for (int i = 0; i < NP; i++) {
        snprintf(pool_buf[i], 64, "Tell me about the %s and the %s.", w[i % 12], w[(i / 12) % 12]);
        pool[i] = pool_buf[i];
    }
    for (int i = 0; i < NC; i++) {
        snprintf(cand_buf[i], 64, "Compare a %s with a %s in %d words", w[(i * 7) % 12],
                 w[(i * 5 + i / 12) % 12], 10 + i % 9);
        cands[i] = cand_buf[i];
    }
    srlm_si_filter_opts o = {0.7, 1, 3, 50, NULL};
    static srlm_si_check c[NC];
    int counts[SRLM_SI_N_VERDICTS];
    CHECK_OK(srlm_si_filter(&o, pool, NP, cands, NC, c, counts));
    int kept = 0, total = 0;
    for (int v = 0; v < SRLM_SI_N_VERDICTS; v++) total += counts[v];
    CHECK(total == NC);
    for (int i = 0; i < NC; i++) {
        if (c[i].verdict != SRLM_SI_KEEP) {
            CHECK(c[i].match >= 0 && c[i].match < NP + i);
            continue;
        }
        kept++;
        CHECK(c[i].rouge <= 0.7);
    }
    CHECK_MSG(kept > 0 && kept < NC, "kept %d of %d", kept, NC);
    CHECK(counts[SRLM_SI_KEEP] == kept);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "%s/self_instruct", test_env("SRLM_TMP", "/tmp/srlm-test"));
    char parent[4200];
    snprintf(parent, sizeof parent, "%s", test_env("SRLM_TMP", "/tmp/srlm-test"));
    mkdir(parent, 0700);
    mkdir(tmpdir, 0700);

    test_shots();
    test_shipped_template();
    test_render_exact();
    test_template_errors();
    test_extract();
    test_blocklist();
    test_filter_table();
    test_filter_order_and_bounds();
    test_filter_many();
    TEST_DONE();
}
