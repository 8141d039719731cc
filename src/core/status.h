/* Status codes and error messages.
 *
 * Library code never exits: it returns an srlm_status and leaves a message in a
 * thread-local buffer (srlm_last_error). Only main() turns a status into an exit
 * code; the numeric values ARE the process exit codes of DESIGN.md. */
#ifndef SRLM_STATUS_H
#define SRLM_STATUS_H

#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    SRLM_OK          = 0,
    SRLM_FAILED      = 1,  /* internal or environmental failure (I/O, memory, ...) */
    SRLM_BAD_INPUT   = 2,  /* bad usage, config, checkpoint, data */
    SRLM_WATCHDOG    = 70, /* no progress within watchdog_s */
    SRLM_INTERRUPTED = 75, /* stopped on a signal; rerun to resume */
} srlm_status;

/* Record a message (printf-style) and return `code`. The C source location is
 * kept separately (srlm_last_error_where) so user-facing text stays about the
 * user's file. */
srlm_status srlm_error_at(const char *src_file, int src_line, srlm_status code,
                          const char *fmt, ...) __attribute__((format(printf, 4, 5)));
srlm_status srlm_verror_at(const char *src_file, int src_line, srlm_status code,
                           const char *fmt, va_list ap);

/* Prepend context to the current message: "loading model: <old message>". */
void srlm_error_context(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

const char *srlm_last_error(void);       /* "" when none */
const char *srlm_last_error_where(void); /* "src/io/x.c:123" */
void srlm_clear_error(void);

#ifdef __cplusplus
}
#endif

#define SRLM_ERR(code, ...) srlm_error_at(__FILE__, __LINE__, (code), __VA_ARGS__)

/* Propagate a failure upward unchanged. */
#define SRLM_CHECK(expr)                              \
    do {                                              \
        srlm_status srlm_s_ = (expr);                 \
        if (srlm_s_ != SRLM_OK) return srlm_s_;       \
    } while (0)

/* For functions that clean up through one label: sets `st` and jumps. */
#define SRLM_CHECK_GOTO(expr, st, label)              \
    do {                                              \
        (st) = (expr);                                \
        if ((st) != SRLM_OK) goto label;              \
    } while (0)

#endif
