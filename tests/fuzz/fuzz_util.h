/* Helpers shared by the libFuzzer harnesses of tests/fuzz (label `fuzz`).
 *
 * A harness is one LLVMFuzzerTestOneInput per parser that reads outside input.
 * Parsers that take a path get the input in a file: one path per process, under
 * /dev/shm when it is writable (no disk I/O), else $TMPDIR, else /tmp.
 * FUZZ_CHECK turns a broken invariant into abort(), which libFuzzer reports as
 * a crash and saves as an artifact. */
#ifndef SRLM_FUZZ_UTIL_H
#define SRLM_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/status.h"
#include "io/fsutil.h"
#include "io/tokenizer.h"

#ifndef SRLM_FUZZ_FIXTURES
#define SRLM_FUZZ_FIXTURES "tests/fixtures"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond, ...)                                                             \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "%s:%d: invariant broken: %s: ", __FILE__, __LINE__, #cond);  \
            fprintf(stderr, __VA_ARGS__);                                                 \
            fprintf(stderr, "\n");                                                        \
            abort();                                                                      \
        }                                                                                 \
    } while (0)

static char fuzz_dir_[512];

static inline void fuzz_remove_scratch_(void) {
    if (fuzz_dir_[0]) srlm_remove_tree(fuzz_dir_);
}

/* A folder for this process's scratch files (created once, removed at exit). */
static inline const char *fuzz_scratch_dir(void) {
    char *dir = fuzz_dir_;
    if (dir[0]) return dir;
    const char *base = NULL;
    if (access("/dev/shm", W_OK) == 0) base = "/dev/shm";
    else if ((base = getenv("TMPDIR")) == NULL || !*base) base = "/tmp";
    snprintf(dir, sizeof fuzz_dir_, "%s/srlm-fuzz-%ld", base, (long)getpid());
    if (mkdir(dir, 0755) != 0 && access(dir, W_OK) != 0) {
        perror(dir);
        abort();
    }
    atexit(fuzz_remove_scratch_);
    return dir;
}

/* dir/name; the same string for the same name (callers keep one name per role). */
static inline void fuzz_path(char *out, size_t cap, const char *name) {
    snprintf(out, cap, "%s/%s", fuzz_scratch_dir(), name);
}

static inline void fuzz_write_file(const char *path, const uint8_t *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        perror(path);
        abort();
    }
}

/* The input in this process's file `name` (rewritten every call); its path. */
static inline const char *fuzz_input_file(const char *name, const uint8_t *data, size_t size) {
    static char path[600];
    fuzz_path(path, sizeof path, name);
    fuzz_write_file(path, data, size);
    return path;
}

/* The input as a NUL-terminated string (malloc'd; stops at an inner NUL for
 * C-string parsers, which is what they would see). */
static inline char *fuzz_strndup(const uint8_t *data, size_t size) {
    char *s = malloc(size + 1);
    if (!s) abort();
    if (size) memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/* The contract of every failed call: a known status and a message. When
 * `must_name` is given (the file the user handed over), the message names it
 * (DESIGN.md "Bad input"). */
static inline void fuzz_check_failure(srlm_status st, const char *must_name) {
    const char *msg = srlm_last_error();
    FUZZ_CHECK(st == SRLM_BAD_INPUT || st == SRLM_FAILED, "unexpected status %d (%s)", (int)st, msg);
    FUZZ_CHECK(msg && *msg, "status %d without a message", (int)st);
    if (must_name) FUZZ_CHECK(strstr(msg, must_name) != NULL, "message does not name %s: %s", must_name, msg);
    /* Out of memory is the only SRLM_FAILED a bounded input may cause. */
    if (st == SRLM_FAILED) FUZZ_CHECK(strstr(msg, "out of memory") != NULL, "SRLM_FAILED for bad input: %s", msg);
}

/* The fixture tokenizer (tests/fixtures/llama/tiny-gqa/tokenizer.model: 320
 * pieces, BOS 1, EOS 2), loaded once; $SRLM_FIXTURES overrides the folder. */
static inline srlm_tokenizer *fuzz_tokenizer(void) {
    static srlm_tokenizer *tok;
    if (tok) return tok;
    const char *dir = getenv("SRLM_FIXTURES");
    char path[1024];
    snprintf(path, sizeof path, "%s/llama/tiny-gqa/tokenizer.model", dir && *dir ? dir : SRLM_FUZZ_FIXTURES);
    if (srlm_tokenizer_load(&tok, path) != SRLM_OK) {
        fprintf(stderr, "fuzz: %s\n", srlm_last_error());
        abort();
    }
    return tok;
}

/* Count non-overlapping occurrences of `needle` in `s`. */
static inline int fuzz_count(const char *s, const char *needle) {
    int n = 0;
    size_t k = strlen(needle);
    for (const char *p = strstr(s, needle); p; p = strstr(p + k, needle)) n++;
    return n;
}

#endif
