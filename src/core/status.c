#include "core/status.h"

#include <stdio.h>
#include <string.h>

enum { MSG_CAP = 2048 };
static _Thread_local char g_msg[MSG_CAP];
static _Thread_local char g_where[256];

srlm_status srlm_verror_at(const char *src_file, int src_line, srlm_status code,
                           const char *fmt, va_list ap) {
    vsnprintf(g_msg, sizeof g_msg, fmt, ap);
    snprintf(g_where, sizeof g_where, "%s:%d", src_file, src_line);
    return code;
}

srlm_status srlm_error_at(const char *src_file, int src_line, srlm_status code,
                          const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    srlm_verror_at(src_file, src_line, code, fmt, ap);
    va_end(ap);
    return code;
}

void srlm_error_context(const char *fmt, ...) {
    char prefix[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    /* Shift the old message right and put the prefix in front; truncate at the end. */
    size_t plen = strlen(prefix);
    if (plen + 2 >= MSG_CAP) plen = MSG_CAP - 3;
    size_t olen = strnlen(g_msg, MSG_CAP - 1);
    if (plen + 2 + olen >= MSG_CAP) olen = MSG_CAP - 1 - plen - 2;
    memmove(g_msg + plen + 2, g_msg, olen);
    memcpy(g_msg, prefix, plen);
    g_msg[plen] = ':';
    g_msg[plen + 1] = ' ';
    g_msg[plen + 2 + olen] = '\0';
}

const char *srlm_last_error(void) { return g_msg; }
const char *srlm_last_error_where(void) { return g_where; }
void srlm_clear_error(void) { g_msg[0] = '\0'; g_where[0] = '\0'; }
