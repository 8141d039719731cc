/* srlm tokenize / srlm detokenize: text <-> token ids through the tokenizer
 * (and, for tokenize --chat, through the one chat formatter). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/flags.h"
#include "io/chat.h"
#include "io/tokenizer.h"

/* Read all of `f` into a malloc'd, NUL-terminated buffer. */
static srlm_status read_all(FILE *f, const char *what, char **out, size_t *len) {
    size_t n = 0, cap = 1 << 16;
    char *buf = malloc(cap);
    if (!buf) return SRLM_ERR(SRLM_FAILED, "out of memory reading %s", what);
    for (;;) {
        if (cap - n < 2) {
            char *p = realloc(buf, cap * 2);
            if (!p) { free(buf); return SRLM_ERR(SRLM_FAILED, "out of memory reading %s", what); }
            buf = p;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
    }
    if (ferror(f)) {
        free(buf);
        return SRLM_ERR(SRLM_FAILED, "reading %s: %s", what, strerror(errno));
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return SRLM_OK;
}

static srlm_status finish_stdout(void) {
    if (fflush(stdout) != 0 || ferror(stdout))
        return SRLM_ERR(SRLM_FAILED, "writing to stdout: %s", strerror(errno));
    return SRLM_OK;
}

srlm_status cmd_tokenize(int argc, char **argv) {
    const char *tok_path = NULL, *system = NULL;
    int bos = 0, eos = 0, chat = 0;
    const srlm_flag flags[] = {
        {"tokenizer", FLAG_STRING, &tok_path, "FILE", "SentencePiece model (tokenizer.model)", 1},
        {"bos", FLAG_BOOL, &bos, NULL, "prepend the BOS id", 0},
        {"eos", FLAG_BOOL, &eos, NULL, "append the EOS id", 0},
        {"chat", FLAG_BOOL, &chat, NULL,
         "stdin is one user message: print the Llama-2 chat prompt ids ([INST] ... [/INST])", 0},
        {"system", FLAG_STRING, &system, "TEXT", "system prompt for --chat", 0},
    };
    const srlm_command_spec spec = {
        "tokenize", NULL,
        "Read UTF-8 text from stdin; print its token ids, separated by spaces, on one line.",
        flags, SRLM_COUNT(flags), 0};

    srlm_parsed_args args;
    srlm_tokenizer *tok = NULL;
    char *text = NULL;
    int *ids = NULL, n_ids = 0;
    size_t len = 0;
    srlm_status st = srlm_parse_flags(&spec, argc, argv, &args);
    if (st != SRLM_OK) return st;
    if (args.help_shown) goto done;
    if (chat && (bos || eos)) {
        st = SRLM_ERR(SRLM_BAD_INPUT, "--bos/--eos do not apply with --chat (the chat format "
                                      "places BOS itself)");
        goto done;
    }
    if (system && !chat) {
        st = SRLM_ERR(SRLM_BAD_INPUT, "--system needs --chat");
        goto done;
    }

    SRLM_CHECK_GOTO(srlm_tokenizer_load(&tok, tok_path), st, done);
    SRLM_CHECK_GOTO(read_all(stdin, "stdin", &text, &len), st, done);
    if (chat) {
        if (strlen(text) != len) {
            st = SRLM_ERR(SRLM_BAD_INPUT, "stdin contains a NUL byte; --chat needs text");
            goto done;
        }
        srlm_chat_turn turn = {text, NULL};
        SRLM_CHECK_GOTO(srlm_chat_encode(tok, system, &turn, 1, &ids, &n_ids), st, done);
    } else {
        SRLM_CHECK_GOTO(srlm_tokenizer_encode(tok, text, len, bos, eos, &ids, &n_ids), st, done);
    }
    for (int i = 0; i < n_ids; i++) printf(i ? " %d" : "%d", ids[i]);
    putchar('\n');
    st = finish_stdout();

done:
    free(ids);
    free(text);
    srlm_tokenizer_free(tok);
    srlm_parsed_args_free(&args);
    return st;
}

/* Parse whitespace-separated integers. A token that is not an integer is
 * SRLM_BAD_INPUT naming it and its position (counted from 0, as ids are). */
static srlm_status parse_ids(char *text, int **ids_out, int *n_out) {
    int *ids = NULL, n = 0, cap = 0;
    const char *ws = " \t\n\r\v\f";
    char *save = NULL;
    for (char *t = strtok_r(text, ws, &save); t; t = strtok_r(NULL, ws, &save)) {
        char *end = NULL;
        errno = 0;
        long v = strtol(t, &end, 10);
        if (end == t || *end) {
            free(ids);
            return SRLM_ERR(SRLM_BAD_INPUT, "'%s' at position %d is not a token id (an integer)",
                            t, n);
        }
        if (errno == ERANGE || v < INT_MIN || v > INT_MAX) {
            free(ids);
            return SRLM_ERR(SRLM_BAD_INPUT, "token id %s at position %d is outside the vocabulary",
                            t, n);
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 1024;
            int *p = realloc(ids, (size_t)cap * sizeof(int));
            if (!p) { free(ids); return SRLM_ERR(SRLM_FAILED, "out of memory reading token ids"); }
            ids = p;
        }
        ids[n++] = (int)v;
    }
    *ids_out = ids;
    *n_out = n;
    return SRLM_OK;
}

srlm_status cmd_detokenize(int argc, char **argv) {
    const char *tok_path = NULL;
    const srlm_flag flags[] = {
        {"tokenizer", FLAG_STRING, &tok_path, "FILE", "SentencePiece model (tokenizer.model)", 1},
    };
    const srlm_command_spec spec = {
        "detokenize", NULL,
        "Read whitespace-separated token ids from stdin; write their text to stdout exactly "
        "(no newline added).",
        flags, SRLM_COUNT(flags), 0};

    srlm_parsed_args args;
    srlm_tokenizer *tok = NULL;
    char *input = NULL, *text = NULL;
    int *ids = NULL, n_ids = 0;
    size_t len = 0;
    srlm_status st = srlm_parse_flags(&spec, argc, argv, &args);
    if (st != SRLM_OK) return st;
    if (args.help_shown) goto done;

    SRLM_CHECK_GOTO(srlm_tokenizer_load(&tok, tok_path), st, done);
    SRLM_CHECK_GOTO(read_all(stdin, "stdin", &input, &len), st, done);
    SRLM_CHECK_GOTO(parse_ids(input, &ids, &n_ids), st, done);
    SRLM_CHECK_GOTO(srlm_tokenizer_decode(tok, ids, n_ids, &text, &len), st, done);
    if (len && fwrite(text, 1, len, stdout) != len) {
        st = SRLM_ERR(SRLM_FAILED, "writing to stdout: %s", strerror(errno));
        goto done;
    }
    st = finish_stdout();

done:
    free(text);
    free(ids);
    free(input);
    srlm_tokenizer_free(tok);
    srlm_parsed_args_free(&args);
    return st;
}
