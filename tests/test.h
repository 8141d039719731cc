/* Minimal test helpers: a failed CHECK prints where and why, and the test
 * program exits 1 at the end. Exit 77 means skipped (ctest SKIP_RETURN_CODE). */
#ifndef SRLM_TEST_H
#define SRLM_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/status.h"

static int test_failures = 0;

#define CHECK(cond)                                                                 \
    do {                                                                            \
        if (!(cond)) {                                                              \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            test_failures++;                                                        \
        }                                                                           \
    } while (0)

#define CHECK_MSG(cond, ...)                                                        \
    do {                                                                            \
        if (!(cond)) {                                                              \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                           \
            fprintf(stderr, "\n");                                                  \
            test_failures++;                                                        \
        }                                                                           \
    } while (0)

/* The call must succeed; on failure print srlm's message. */
#define CHECK_OK(expr)                                                              \
    do {                                                                            \
        srlm_status st_ = (expr);                                                   \
        if (st_ != SRLM_OK) {                                                       \
            fprintf(stderr, "%s:%d: %s failed (%d): %s\n", __FILE__, __LINE__, #expr, \
                    (int)st_, srlm_last_error());                                   \
            test_failures++;                                                        \
        }                                                                           \
    } while (0)

#define TEST_SKIP(...)                                                              \
    do {                                                                            \
        printf("SKIPPED: ");                                                        \
        printf(__VA_ARGS__);                                                        \
        printf("\n");                                                               \
        exit(77);                                                                   \
    } while (0)

#define TEST_DONE()                                                                 \
    do {                                                                            \
        if (test_failures) fprintf(stderr, "%d check(s) failed\n", test_failures);  \
        else printf("all checks passed\n");                                         \
        return test_failures ? 1 : 0;                                               \
    } while (0)

/* The whole file, NUL-terminated (malloc'd); NULL when it cannot be read.
 * *len (may be NULL) gets its size. */
static inline char *test_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0, got;
    char *s = malloc(cap + 1);
    while (s && (got = fread(s + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            char *grown = realloc(s, 2 * cap + 1);
            if (!grown) { free(s); s = NULL; break; }
            s = grown;
            cap *= 2;
        }
    }
    fclose(f);
    if (s) s[n] = '\0';
    if (len) *len = n;
    return s;
}

static inline const char *test_env(const char *name, const char *fallback) {
    const char *v = getenv(name);
    return v && *v ? v : fallback;
}

#endif
