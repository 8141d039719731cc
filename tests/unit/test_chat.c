/* The chat formatter against ids built here, independently, the way Meta's
 * reference builds them (meta-llama/llama, llama/generation.py,
 * chat_completion): each turn's text written out literally in this file,
 * encoded by spm_encode (SentencePiece's own tool), with BOS/EOS added as ids.
 * Uses the real Llama-2 tokenizer when $SRLM_SHARED_DIR has it, else a small
 * model trained here on the test corpus. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "io/chat.h"
#include "test.h"

static char tmpdir[4096];
static char model[4300];
static int BOS, EOS;

/* tests/data/tokenizer-corpus.txt: next to $SRLM_FIXTURES, else found from this
 * source file's own path (absolute under CMake). */
static void find_corpus(char *out, size_t n) {
    struct stat sb;
    snprintf(out, n, "%s/../data/tokenizer-corpus.txt", test_env("SRLM_FIXTURES", "tests/fixtures"));
    if (stat(out, &sb) == 0) return;
    const char *slash = strrchr(__FILE__, '/');
    snprintf(out, n, "%.*s/../data/tokenizer-corpus.txt", slash ? (int)(slash - __FILE__) : 1,
             slash ? __FILE__ : ".");
}

static int have_tool(const char *name) {
    char cmd[256];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", name);
    return system(cmd) == 0;
}

/* A growing id list. */
typedef struct { int *p; int n; } ids_t;

static void push(ids_t *v, int id) {
    v->p = realloc(v->p, (size_t)(v->n + 1) * sizeof(int));
    v->p[v->n++] = id;
}

/* Reference encode of `text` (it may contain newlines) with spm_encode, which
 * reads one line at a time. SentencePiece encodes the text as one string with a
 * "▁" prefix; no piece contains "\n", so "\n" is its byte piece <0x0A> and BPE
 * merges never cross it:
 *   ids(S0 "\n" S1 ... "\n" Sk) = E(S0) <0x0A> E'(S1) ... <0x0A> E'(Sk)
 * E = spm_encode of the segment (with the "▁" prefix), E' = without it, taken
 * from spm_encode("\x01" S) = "▁" <0x01> E'(S) ("\x01" is not in any piece);
 * byte pieces are consecutive, so <0x0A> = <0x01> + 9. */
static void ref_encode(const char *text, ids_t *out) {
    char in_path[4200], out_path[4200], cmd[13000];
    snprintf(in_path, sizeof in_path, "%s/ref_in.txt", tmpdir);
    snprintf(out_path, sizeof out_path, "%s/ref_out.txt", tmpdir);
    FILE *f = fopen(in_path, "wb");
    fputs("\x01\n", f);  /* probe: "▁" <0x01> */
    int n_seg = 1;
    for (const char *p = text; *p; p++) {
        if (*p == '\n') { fputs("\n\x01", f); n_seg++; }
        else fputc(*p, f);
    }
    fputc('\n', f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "spm_encode --model='%s' --output_format=id < '%s' > '%s'", model,
             in_path, out_path);
    if (system(cmd) != 0) { fprintf(stderr, "failed: %s\n", cmd); exit(1); }
    size_t len;
    char *res = test_read_file(out_path, &len), *line = res, *save = NULL;
    int seg = -1, space_id = -1, byte01 = -1;
    for (char *nl; (nl = strchr(line, '\n')); line = nl + 1, seg++) {
        *nl = '\0';
        int tmp[4096], k = 0;
        for (char *t = strtok_r(line, " ", &save); t; t = strtok_r(NULL, " ", &save)) tmp[k++] = atoi(t);
        if (seg == -1) {  /* the probe */
            if (k != 2) { fprintf(stderr, "unexpected probe encoding\n"); exit(1); }
            space_id = tmp[0];
            byte01 = tmp[1];
            continue;
        }
        int skip = 0;
        if (seg > 0) {
            push(out, byte01 + 9);  /* "\n" */
            if (k < 2 || tmp[0] != space_id || tmp[1] != byte01) {
                fprintf(stderr, "reference assumption broken on segment %d\n", seg);
                exit(1);
            }
            skip = 2;
        }
        for (int i = skip; i < k; i++) push(out, tmp[i]);
    }
    if (seg != n_seg) { fprintf(stderr, "spm_encode gave %d segments for %d\n", seg, n_seg); exit(1); }
    free(res);
}

/* The "▁" piece's id, from spm_encode. */
static int space_piece(void) {
    ids_t v = {0};
    ref_encode("\x01", &v);  /* "▁" <0x01> */
    int id = v.p[0];
    free(v.p);
    return id;
}

static int check_ids(const char *what, const int *got, int n_got, const ids_t *want) {
    int same = n_got == want->n && !memcmp(got, want->p, (size_t)n_got * sizeof(int));
    CHECK_MSG(same, "%s: ids differ from the reference", what);
    if (!same) {
        fprintf(stderr, "  ours:");
        for (int i = 0; i < n_got; i++) fprintf(stderr, " %d", got[i]);
        fprintf(stderr, "\n  ref: ");
        for (int i = 0; i < want->n; i++) fprintf(stderr, " %d", want->p[i]);
        fprintf(stderr, "\n");
    }
    return same;
}

int main(void) {
    const char *tmp = test_env("SRLM_TMP", "/tmp");
    mkdir(tmp, 0777);
    snprintf(tmpdir, sizeof tmpdir, "%s/test_chat", tmp);
    mkdir(tmpdir, 0777);
    if (!have_tool("spm_encode"))
        TEST_SKIP("spm_encode not installed (Debian package 'sentencepiece'): no reference to "
                  "compare the chat format with");

    struct stat sb;
    int llama = 0;
    snprintf(model, sizeof model, "%s/data/llama2/tokenizer.model",
             test_env("SRLM_SHARED_DIR", "../shared"));
    if (stat(model, &sb) == 0) {
        llama = 1;
    } else {
        printf("SKIPPED (part): %s absent; using a tokenizer trained on the test corpus\n", model);
        char corpus[4200], prefix[4200];
        find_corpus(corpus, sizeof corpus);
        snprintf(prefix, sizeof prefix, "%s/chat-bpe", tmpdir);
        snprintf(model, sizeof model, "%s.model", prefix);
        CHECK_OK(srlm_tokenizer_train(corpus, prefix,
                                      "--vocab_size=600 --model_type=bpe --byte_fallback=true "
                                      "--character_coverage=0.99 --normalization_rule_name=identity "
                                      "--remove_extra_whitespaces=false --split_digits=true"));
    }
    srlm_tokenizer *tok = NULL;
    CHECK_OK(srlm_tokenizer_load(&tok, model));
    if (!tok) TEST_DONE();
    BOS = srlm_tokenizer_bos(tok);
    EOS = srlm_tokenizer_eos(tok);
    printf("tokenizer %s (bos %d, eos %d)\n", model, BOS, EOS);

    int *ids = NULL, n = 0;
    ids_t want = {0};

    /* 1. One open turn, no system prompt. */
    srlm_chat_turn t1 = {"What is the capital of France?", NULL};
    CHECK_OK(srlm_chat_encode(tok, NULL, &t1, 1, &ids, &n));
    push(&want, BOS);
    ref_encode("[INST] What is the capital of France? [/INST]", &want);
    check_ids("single turn", ids, n, &want);
    if (llama) {
        /* Widely published Llama-2 ids: <s> "[INST]" = 1 518 25580 29962 and
         * "[/INST]" after a word = 518 29914 25580 29962. */
        int head[] = {1, 518, 25580, 29962}, tail[] = {518, 29914, 25580, 29962};
        CHECK(n > 8 && !memcmp(ids, head, sizeof head) && !memcmp(ids + n - 4, tail, sizeof tail));
    }
    int *single = ids, n_single = n;
    ids = NULL;
    want.n = 0;

    /* 2. Python strip(): ASCII and Unicode whitespace (NBSP, ideographic space)
     *    around the user text goes; inner whitespace stays. */
    srlm_chat_turn t2 = {"\xe3\x80\x80 \t\nWhat is the capital of France?\xc2\xa0\n ", NULL};
    CHECK_OK(srlm_chat_encode(tok, NULL, &t2, 1, &ids, &n));
    CHECK(n == n_single && !memcmp(ids, single, (size_t)n * sizeof(int)));
    free(ids);
    srlm_chat_turn t2b = {"  two  spaces\tinside  ", NULL};
    CHECK_OK(srlm_chat_encode(tok, NULL, &t2b, 1, &ids, &n));
    push(&want, BOS);
    ref_encode("[INST] two  spaces\tinside [/INST]", &want);
    check_ids("inner whitespace", ids, n, &want);
    free(ids);
    want.n = 0;

    /* 3. A system prompt is folded into the first user message; the strip is of
     *    the whole, so the user's leading spaces stay (as in Meta's code). */
    const char *sys = "You are a helpful assistant.\nAnswer in one sentence.";
    srlm_chat_turn t3 = {"  Hi there  ", NULL};
    CHECK_OK(srlm_chat_encode(tok, sys, &t3, 1, &ids, &n));
    push(&want, BOS);
    ref_encode("[INST] <<SYS>>\nYou are a helpful assistant.\nAnswer in one sentence.\n<</SYS>>\n\n"
               "  Hi there [/INST]", &want);
    check_ids("system prompt", ids, n, &want);
    free(ids);
    want.n = 0;

    /* 4. Multi-turn with answers: every turn BOS ... and each answered one
     *    " answer " EOS; the last turn is open. */
    srlm_chat_turn t4[] = {
        {"Name a fruit.", " Apple. "},
        {"Another one?", "Banana, which is yellow."},
        {"And a vegetable?", NULL},
    };
    CHECK_OK(srlm_chat_encode(tok, "Be brief.", t4, 3, &ids, &n));
    push(&want, BOS);
    ref_encode("[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nName a fruit. [/INST] Apple. ", &want);
    push(&want, EOS);
    int bos2 = want.n;
    push(&want, BOS);
    ref_encode("[INST] Another one? [/INST] Banana, which is yellow. ", &want);
    push(&want, EOS);
    int bos3 = want.n;
    push(&want, BOS);
    ref_encode("[INST] And a vegetable? [/INST]", &want);
    check_ids("multi-turn", ids, n, &want);
    int n_bos = 0, n_eos = 0;
    for (int i = 0; i < n; i++) { n_bos += ids[i] == BOS; n_eos += ids[i] == EOS; }
    CHECK(n_bos == 3 && n_eos == 2);
    CHECK(n > bos3 && ids[0] == BOS && ids[bos2 - 1] == EOS && ids[bos2] == BOS &&
          ids[bos3 - 1] == EOS && ids[bos3] == BOS && ids[n - 1] != EOS);
    free(ids);
    want.n = 0;

    /* 5. A closed dialog (the last turn answered) ends with " answer " EOS. */
    CHECK_OK(srlm_chat_encode(tok, NULL, t4 + 1, 1, &ids, &n));
    push(&want, BOS);
    ref_encode("[INST] Another one? [/INST] Banana, which is yellow. ", &want);
    push(&want, EOS);
    check_ids("closed turn", ids, n, &want);
    free(ids);
    want.n = 0;

    /* 6. encode_pair: prompt = the open turn; response = encode(answer.strip())
     *    + EOS. Together they are Meta's closed turn without the space before
     *    EOS, i.e. exactly one "▁" piece fewer. */
    int *p = NULL, np = 0, *r = NULL, nr = 0;
    CHECK_OK(srlm_chat_encode_pair(tok, NULL, "What is the capital of France?",
                                   "\n The capital of France is Paris.  ", &p, &np, &r, &nr));
    CHECK(np == n_single && !memcmp(p, single, (size_t)np * sizeof(int)));
    ref_encode("The capital of France is Paris.", &want);
    push(&want, EOS);
    check_ids("pair response", r, nr, &want);
    want.n = 0;
    int *cat = malloc((size_t)(np + nr + 1) * sizeof(int));
    memcpy(cat, p, (size_t)np * sizeof(int));
    memcpy(cat + np, r, (size_t)nr * sizeof(int));
    push(&want, BOS);
    ref_encode("[INST] What is the capital of France? [/INST] The capital of France is Paris.", &want);
    push(&want, EOS);
    check_ids("pair concatenation", cat, np + nr, &want);
    want.n = 0;
    push(&want, BOS);
    ref_encode("[INST] What is the capital of France? [/INST] The capital of France is Paris. ", &want);
    push(&want, EOS);
    cat[np + nr - 1] = space_piece();  /* ... "▁" EOS */
    cat[np + nr] = EOS;
    check_ids("Meta closed turn = pair + space piece", cat, np + nr + 1, &want);
    if (llama) CHECK(cat[np + nr - 1] == 29871);
    free(cat);
    free(p);
    free(r);
    want.n = 0;

    /* 7. Bad dialogs. */
    CHECK(srlm_chat_encode(tok, NULL, t4, 0, &ids, &n) == SRLM_BAD_INPUT && ids == NULL);
    srlm_chat_turn open_middle[] = {{"a", NULL}, {"b", NULL}};
    CHECK(srlm_chat_encode(tok, NULL, open_middle, 2, &ids, &n) == SRLM_BAD_INPUT && ids == NULL);
    CHECK(strstr(srlm_last_error(), "turn 0") != NULL);
    srlm_chat_turn no_user = {NULL, "x"};
    CHECK(srlm_chat_encode(tok, NULL, &no_user, 1, &ids, &n) == SRLM_BAD_INPUT);
    CHECK(srlm_chat_encode_pair(tok, NULL, "q", NULL, &p, &np, &r, &nr) == SRLM_BAD_INPUT &&
          p == NULL && r == NULL);

    /* srlm_chat_strip itself, on a few edge cases (Python semantics). */
    size_t b, e;
    srlm_chat_strip("", 0, &b, &e);
    CHECK(b == 0 && e == 0);
    srlm_chat_strip(" \t\n ", 4, &b, &e);
    CHECK(b == e);
    srlm_chat_strip("\xe2\x80\x83x\xe2\x80\x8b", 7, &b, &e);  /* EM SPACE strips; ZWSP does not */
    CHECK(b == 3 && e == 7);
    srlm_chat_strip("x\xff ", 3, &b, &e);  /* invalid UTF-8 is not whitespace */
    CHECK(b == 0 && e == 2);

    free(single);
    free(want.p);
    srlm_tokenizer_free(tok);
    TEST_DONE();
}
