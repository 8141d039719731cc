#include "core/fault.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int field_matches(const char *pattern, size_t len, const char *value) {
    return (len == 1 && pattern[0] == '*') || (strlen(value) == len && !strncmp(pattern, value, len));
}

srlm_status srlm_fault_point(const char *phase, long item, int rank, const char *point) {
    const char *spec = getenv("SRLM_FAULT");
    if (!spec || !*spec) return SRLM_OK;
    char item_s[32], rank_s[32];
    snprintf(item_s, sizeof item_s, "%ld", item);
    snprintf(rank_s, sizeof rank_s, "%d", rank);
    const char *values[4] = {phase, item_s, rank_s, point};
    const char *p = spec;
    for (int f = 0; f < 4; f++) {
        const char *end = strchr(p, ':');
        if (f == 3 && !end) end = p + strlen(p);
        if (!end || !field_matches(p, (size_t)(end - p), values[f])) return SRLM_OK;
        p = *end ? end + 1 : end;
    }
    if (!strcmp(p, "hang")) /* a stuck process, for the watchdog's tests */
        for (;;) pause();
    if (!strcmp(p, "kill")) /* kill -9 at this exact place: no cleanup, no message */
        raise(SIGKILL);
    if (!strcmp(p, "stop")) { /* a frozen process, for the other ranks' watchdogs */
        raise(SIGSTOP);
        return SRLM_OK;
    }
    return SRLM_ERR(SRLM_FAILED, "injected fault at %s:%ld:%d:%s (SRLM_FAULT)", phase, item, rank, point);
}
