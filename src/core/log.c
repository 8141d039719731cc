#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>

static srlm_log_level g_level = SRLM_LOG_INFO;
static int g_rank = -1;

void srlm_log_set_level(srlm_log_level level) { g_level = level; }
void srlm_log_set_rank(int rank) { g_rank = rank; }

void srlm_log(srlm_log_level level, const char *fmt, ...) {
    if (level < g_level) return;
    if (g_rank > 0 && level < SRLM_LOG_WARN) return; /* progress and info: rank 0 speaks for all */
    static const char *names[] = {"debug", "info", "warning", "error"};
    char line[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (g_rank >= 0)
        fprintf(stderr, "[rank %d] %s: %s\n", g_rank, names[level], line);
    else
        fprintf(stderr, "%s: %s\n", names[level], line);
}
