/* The tokenizer against SentencePiece's own command-line tools (spm_encode,
 * spm_decode), never against our own output.
 *
 * 1. A small BPE model with byte fallback is trained here (srlm_tokenizer_train)
 *    on tests/data/tokenizer-corpus.txt, Llama-2 style (identity normalizer,
 *    extra whitespace kept, digits split), so rare characters fall back to bytes.
 * 2. The real Llama-2 tokenizer, when $SRLM_SHARED_DIR/data/llama2 has it.
 * For each: every corpus line encodes to spm_encode's ids; the whole corpus as
 * one string (newlines included) encodes to ids built from spm_encode (see
 * whole_text_reference); decode(encode(line)) == line, and spm_decode of our
 * ids gives the corpus back byte for byte. Plus the error paths. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "io/tokenizer.h"
#include "test.h"

typedef struct { int *ids; int n; } idvec;

static char tmpdir[4096];

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

static void write_file(const char *path, const char *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) { fprintf(stderr, "cannot write %s: %s\n", path, strerror(errno)); exit(1); }
    fwrite(data, 1, len, f);
    fclose(f);
}

/* Split `text` at '\n' into lines (modifies text; the piece after the final
 * newline is dropped when empty, like a line reader does). */
static int split_lines(char *text, size_t len, char ***lines_out) {
    int n = 0;
    char **lines = malloc((len + 2) * sizeof(char *));
    char *p = text, *end = text + len;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        lines[n++] = p;
        if (!nl) break;
        *nl = '\0';
        p = nl + 1;
    }
    *lines_out = lines;
    return n;
}

static int have_tool(const char *name) {
    char cmd[256];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", name);
    return system(cmd) == 0;
}

/* Run spm_encode on a file of lines; parse one id list per output line. */
static idvec *spm_encode_file(const char *model, const char *in_path, int expect_lines) {
    char out_path[4200], cmd[12000];
    snprintf(out_path, sizeof out_path, "%s/spm_out.txt", tmpdir);
    snprintf(cmd, sizeof cmd, "spm_encode --model='%s' --output_format=id < '%s' > '%s'", model,
             in_path, out_path);
    if (system(cmd) != 0) { fprintf(stderr, "failed: %s\n", cmd); return NULL; }
    size_t len;
    char *text = test_read_file(out_path, &len), **lines;
    int n = split_lines(text, len, &lines);
    if (n != expect_lines) {
        fprintf(stderr, "spm_encode gave %d lines for %d\n", n, expect_lines);
        free(text); free(lines);
        return NULL;
    }
    idvec *v = calloc((size_t)n + 1, sizeof(idvec));
    for (int i = 0; i < n; i++) {
        v[i].ids = malloc((strlen(lines[i]) / 2 + 2) * sizeof(int));
        char *p = lines[i], *e;
        for (long x; (x = strtol(p, &e, 10)), e != p; p = e) v[i].ids[v[i].n++] = (int)x;
    }
    free(text); free(lines);
    return v;
}

static void free_idvecs(idvec *v, int n) {
    if (!v) return;
    for (int i = 0; i < n; i++) free(v[i].ids);
    free(v);
}

static int same_ids(const int *a, int na, const int *b, int nb) {
    return na == nb && (na == 0 || memcmp(a, b, (size_t)na * sizeof(int)) == 0);
}

static void print_ids(const char *label, const int *ids, int n) {
    fprintf(stderr, "  %s:", label);
    for (int i = 0; i < n && i < 60; i++) fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, n > 60 ? " ...\n" : "\n");
}

/* Reference ids for a text WITH newlines, from spm_encode (which reads one line
 * at a time). SentencePiece encodes the text as one "▁"-prefixed string; no
 * piece contains "\n", so "\n" becomes its byte piece <0x0A> and BPE merges
 * never cross it. Hence
 *   ids(L1 "\n" L2 ... "\n" Ln) = E(L1) <0x0A> E'(L2) <0x0A> ... E'(Ln)
 * where E = spm_encode of the line (with the dummy "▁" prefix) and E' = the
 * same without the prefix. E'(L) comes from spm_encode of "\x01" L: "\x01" is
 * not in the vocabulary either, so that gives "▁" <0x01> E'(L). Byte pieces
 * are consecutive, so <0x0A> = <0x01> + 9. */
static int whole_text_reference(const char *model, char **lines, int n_lines, int ends_with_newline,
                                int **ids_out, int *n_out) {
    char in_path[4200];
    snprintf(in_path, sizeof in_path, "%s/spm_in_x01.txt", tmpdir);
    FILE *f = fopen(in_path, "wb");
    if (!f) return 0;
    fputs("\x01\n", f);  /* line 0: just "▁" <0x01>, to learn their ids */
    for (int i = 0; i < n_lines; i++) fprintf(f, "\x01%s\n", lines[i]);
    fclose(f);
    idvec *x = spm_encode_file(model, in_path, n_lines + 1);
    snprintf(in_path, sizeof in_path, "%s/spm_in_first.txt", tmpdir);
    write_file(in_path, lines[0], strlen(lines[0]));
    idvec *first = spm_encode_file(model, in_path, 1);
    if (!x || !first || x[0].n != 2) {
        free_idvecs(x, n_lines + 1); free_idvecs(first, 1);
        return 0;
    }
    int space_id = x[0].ids[0], byte01 = x[0].ids[1], nl = byte01 + 9;
    int cap = first[0].n + 1, n = 0;
    for (int i = 1; i <= n_lines; i++) cap += x[i].n;
    int *ids = malloc((size_t)cap * sizeof(int));
    memcpy(ids, first[0].ids, (size_t)first[0].n * sizeof(int));
    n = first[0].n;
    int ok = 1;
    for (int i = 1; i < n_lines + (ends_with_newline ? 1 : 0); i++) {
        ids[n++] = nl;
        if (i == n_lines) break;  /* the text ends with "\n": nothing after it */
        idvec *e = &x[i + 1];
        if (e->n < 2 || e->ids[0] != space_id || e->ids[1] != byte01) {
            fprintf(stderr, "reference assumption broken on line %d\n", i + 1);
            ok = 0;
            break;
        }
        memcpy(ids + n, e->ids + 2, (size_t)(e->n - 2) * sizeof(int));
        n += e->n - 2;
    }
    free_idvecs(x, n_lines + 1);
    free_idvecs(first, 1);
    if (!ok) { free(ids); return 0; }
    *ids_out = ids;
    *n_out = n;
    return 1;
}

/* All comparisons for one model. Returns the number of reference comparisons. */
static int check_model(const char *label, const char *model, const char *corpus_path,
                       int have_spm) {
    srlm_tokenizer *tok = NULL;
    CHECK_OK(srlm_tokenizer_load(&tok, model));
    if (!tok) return 0;
    size_t len;
    char *corpus = test_read_file(corpus_path, &len);
    char *whole = malloc(len + 1);
    memcpy(whole, corpus, len + 1);
    char **lines;
    int n_lines = split_lines(corpus, len, &lines), compared = 0;
    int vocab = srlm_tokenizer_vocab_size(tok);
    printf("%s: %s, vocab %d, %d corpus lines\n", label, model, vocab, n_lines);

    /* Round trip per line, and our ids collected for spm_decode. */
    char ids_path[4200];
    snprintf(ids_path, sizeof ids_path, "%s/%s_ids.txt", tmpdir, label);
    FILE *idf = fopen(ids_path, "w");
    idvec *ours = calloc((size_t)n_lines, sizeof(idvec));
    int byte_pieces_used = 0;
    for (int i = 0; i < n_lines; i++) {
        CHECK_OK(srlm_tokenizer_encode(tok, lines[i], strlen(lines[i]), 0, 0, &ours[i].ids,
                                       &ours[i].n));
        for (int k = 0; k < ours[i].n; k++) {
            fprintf(idf, k ? " %d" : "%d", ours[i].ids[k]);
            byte_pieces_used += !strncmp(srlm_tokenizer_piece(tok, ours[i].ids[k]), "<0x", 3);
        }
        fputc('\n', idf);
        char *back = NULL;
        size_t blen = 0;
        CHECK_OK(srlm_tokenizer_decode(tok, ours[i].ids, ours[i].n, &back, &blen));
        CHECK_MSG(back && blen == strlen(lines[i]) && !memcmp(back, lines[i], blen),
                  "%s line %d does not round-trip: '%s' -> '%s'", label, i + 1, lines[i],
                  back ? back : "(null)");
        free(back);
    }
    fclose(idf);
    CHECK_MSG(byte_pieces_used > 0, "%s: the corpus should exercise byte fallback", label);

    /* BOS/EOS are ids added around the text and decode to nothing. */
    int *ids = NULL, n = 0;
    CHECK_OK(srlm_tokenizer_encode(tok, lines[0], strlen(lines[0]), 1, 1, &ids, &n));
    CHECK(n == ours[0].n + 2 && ids[0] == srlm_tokenizer_bos(tok) &&
          ids[n - 1] == srlm_tokenizer_eos(tok) && same_ids(ids + 1, n - 2, ours[0].ids, ours[0].n));
    char *back = NULL;
    size_t blen = 0;
    CHECK_OK(srlm_tokenizer_decode(tok, ids, n, &back, &blen));
    CHECK(back && blen == strlen(lines[0]) && !memcmp(back, lines[0], blen));
    free(back);
    free(ids);

    /* The whole file as one string: newlines and blank lines included. */
    CHECK_OK(srlm_tokenizer_encode(tok, whole, len, 0, 0, &ids, &n));
    CHECK_OK(srlm_tokenizer_decode(tok, ids, n, &back, &blen));
    CHECK_MSG(back && blen == len && !memcmp(back, whole, len), "%s: whole corpus round trip",
              label);
    free(back);

    if (have_spm) {
        idvec *ref = spm_encode_file(model, corpus_path, n_lines);
        CHECK_MSG(ref != NULL, "%s: spm_encode failed", label);
        for (int i = 0; ref && i < n_lines; i++) {
            int same = same_ids(ours[i].ids, ours[i].n, ref[i].ids, ref[i].n);
            CHECK_MSG(same, "%s line %d: ids differ from spm_encode: '%s'", label, i + 1, lines[i]);
            if (!same) { print_ids("ours", ours[i].ids, ours[i].n); print_ids("spm ", ref[i].ids, ref[i].n); }
            compared++;
        }
        free_idvecs(ref, n_lines);

        int *wref = NULL, nw = 0;
        int ok = whole_text_reference(model, lines, n_lines, len && whole[len - 1] == '\n', &wref, &nw);
        CHECK_MSG(ok, "%s: could not build the whole-text reference", label);
        if (ok) {
            CHECK_MSG(same_ids(ids, n, wref, nw), "%s: whole corpus ids differ from the spm_encode "
                      "reference (%d vs %d ids)", label, n, nw);
            compared++;
        }
        free(wref);

        /* spm_decode of our ids, line by line, must give the corpus back. */
        char cmd[13000], out_path[4200];
        snprintf(out_path, sizeof out_path, "%s/%s_decoded.txt", tmpdir, label);
        snprintf(cmd, sizeof cmd, "spm_decode --model='%s' --input_format=id < '%s' > '%s'", model,
                 ids_path, out_path);
        CHECK_MSG(system(cmd) == 0, "%s failed", cmd);
        size_t dlen;
        char *dec = test_read_file(out_path, &dlen);
        int last_nl = len && whole[len - 1] == '\n';
        CHECK_MSG(dec && dlen == len + (last_nl ? 0 : 1) && !memcmp(dec, whole, len),
                  "%s: spm_decode of our ids is not the corpus", label);
        free(dec);
        compared++;
    }
    free(ids);

    for (int i = 0; i < n_lines; i++) free(ours[i].ids);
    free(ours);
    free(lines);
    free(corpus);
    free(whole);
    srlm_tokenizer_free(tok);
    return compared;
}

static void check_errors(const char *model) {
    srlm_tokenizer *tok = NULL;
    char path[4200];

    snprintf(path, sizeof path, "%s/no-such-tokenizer.model", tmpdir);
    CHECK(srlm_tokenizer_load(&tok, path) == SRLM_BAD_INPUT && tok == NULL);
    CHECK_MSG(strstr(srlm_last_error(), path) != NULL, "message should name the file: %s",
              srlm_last_error());

    snprintf(path, sizeof path, "%s/garbage.model", tmpdir);
    write_file(path, "this is not a sentencepiece model\n", 34);
    CHECK(srlm_tokenizer_load(&tok, path) == SRLM_BAD_INPUT && tok == NULL);
    CHECK_MSG(strstr(srlm_last_error(), path) != NULL, "message should name the file: %s",
              srlm_last_error());

    snprintf(path, sizeof path, "%s/empty.model", tmpdir);
    write_file(path, "", 0);
    CHECK(srlm_tokenizer_load(&tok, path) == SRLM_BAD_INPUT && tok == NULL);
    CHECK(strstr(srlm_last_error(), path) != NULL);

    CHECK(srlm_tokenizer_load(&tok, tmpdir) == SRLM_BAD_INPUT && tok == NULL);  /* a folder */

    CHECK_OK(srlm_tokenizer_load(&tok, model));
    if (!tok) return;
    char *text = NULL;
    size_t len = 0;
    int bad1[] = {5, -1, 6};
    CHECK(srlm_tokenizer_decode(tok, bad1, 3, &text, &len) == SRLM_BAD_INPUT && text == NULL);
    CHECK_MSG(strstr(srlm_last_error(), "-1") && strstr(srlm_last_error(), "position 1"),
              "message should name id and position: %s", srlm_last_error());
    int bad2[] = {99999};
    CHECK(srlm_tokenizer_decode(tok, bad2, 1, &text, &len) == SRLM_BAD_INPUT && text == NULL);
    CHECK_MSG(strstr(srlm_last_error(), "99999") && strstr(srlm_last_error(), "position 0"),
              "message should name id and position: %s", srlm_last_error());
    int vocab = srlm_tokenizer_vocab_size(tok);
    CHECK(srlm_tokenizer_decode(tok, &vocab, 1, &text, &len) == SRLM_BAD_INPUT);
    CHECK(!strcmp(srlm_tokenizer_piece(tok, -1), "") && !strcmp(srlm_tokenizer_piece(tok, vocab), ""));

    /* Empty text: zero ids, a non-NULL array; decoding nothing gives "". */
    int *ids = NULL, n = -1;
    CHECK_OK(srlm_tokenizer_encode(tok, "", 0, 0, 0, &ids, &n));
    CHECK(ids != NULL && n == 0);
    CHECK_OK(srlm_tokenizer_decode(tok, ids, 0, &text, &len));
    CHECK(text && len == 0 && text[0] == '\0');
    free(ids);
    free(text);
    srlm_tokenizer_free(tok);

    /* Training errors come back as a status, not an abort. */
    snprintf(path, sizeof path, "%s/bad", tmpdir);
    CHECK(srlm_tokenizer_train("/no/such/corpus.txt", path, "--vocab_size=300") == SRLM_BAD_INPUT);
    CHECK(strstr(srlm_last_error(), "/no/such/corpus.txt") != NULL);
}

int main(void) {
    const char *tmp = test_env("SRLM_TMP", "/tmp");
    mkdir(tmp, 0777);
    snprintf(tmpdir, sizeof tmpdir, "%s/test_tokenizer", tmp);
    mkdir(tmpdir, 0777);
    CHECK_MSG(!strchr(tmpdir, '\''), "scratch path must not contain a quote");

    char corpus[4200];
    find_corpus(corpus, sizeof corpus);
    struct stat sb;
    if (stat(corpus, &sb) != 0) {
        fprintf(stderr, "corpus %s not found\n", corpus);
        return 1;
    }

    /* Llama-2-like settings; coverage < 1 leaves rare characters to byte fallback. */
    char prefix[4200], model[4300];
    snprintf(prefix, sizeof prefix, "%s/tok-bpe", tmpdir);
    snprintf(model, sizeof model, "%s.model", prefix);
    CHECK_OK(srlm_tokenizer_train(corpus, prefix,
                                  "--vocab_size=800 --model_type=bpe --byte_fallback=true "
                                  "--character_coverage=0.99 --normalization_rule_name=identity "
                                  "--remove_extra_whitespaces=false --split_digits=true "
                                  "--allow_whitespace_only_pieces=true"));
    /* A bad option is an error, not a crash. */
    char prefix2[4300];
    snprintf(prefix2, sizeof prefix2, "%s/tok-bad", tmpdir);
    CHECK(srlm_tokenizer_train(corpus, prefix2, "--vocab_size=abc") == SRLM_BAD_INPUT);
    CHECK(srlm_tokenizer_train(corpus, prefix2, "--no_such_option=1") == SRLM_BAD_INPUT);
    CHECK(srlm_tokenizer_train(corpus, prefix2, "--input=x") == SRLM_BAD_INPUT);

    int have_spm = have_tool("spm_encode") && have_tool("spm_decode");
    if (!have_spm)
        printf("SKIPPED (part): spm_encode/spm_decode not installed (Debian package "
               "'sentencepiece'); no comparison with the reference tools\n");

    int compared = check_model("trained", model, corpus, have_spm);
    check_errors(model);

    char llama[4200];
    snprintf(llama, sizeof llama, "%s/data/llama2/tokenizer.model",
             test_env("SRLM_SHARED_DIR", "../shared"));
    if (stat(llama, &sb) != 0) {
        printf("SKIPPED (part): %s absent; Llama-2 tokenizer not checked\n", llama);
    } else {
        srlm_tokenizer *tok = NULL;
        CHECK_OK(srlm_tokenizer_load(&tok, llama));
        if (tok) {
            /* Facts of Meta's released tokenizer. */
            CHECK(srlm_tokenizer_vocab_size(tok) == 32000);
            CHECK(srlm_tokenizer_bos(tok) == 1 && srlm_tokenizer_eos(tok) == 2);
            CHECK(srlm_tokenizer_unk(tok) == 0 && srlm_tokenizer_pad(tok) == -1);
            CHECK(!strcmp(srlm_tokenizer_piece(tok, 13), "<0x0A>"));
            CHECK(srlm_tokenizer_is_control(tok, 1) && !srlm_tokenizer_is_control(tok, 13));
            int *ids = NULL, n = 0;
            CHECK_OK(srlm_tokenizer_encode(tok, "Hello world", 11, 1, 0, &ids, &n));
            int hello[] = {1, 15043, 3186};  /* as spm_encode and HF LlamaTokenizer give */
            CHECK(same_ids(ids, n, hello, 3));
            free(ids);
            srlm_tokenizer_free(tok);
        }
        compared += check_model("llama2", llama, corpus, have_spm);
    }

    printf("%d comparisons with spm_encode/spm_decode\n", compared);
    if (!test_failures && !have_spm)
        TEST_SKIP("reference tools absent: only round trips and error paths were checked");
    TEST_DONE();
}
