/* Named fault points for tests (DESIGN.md: SRLM_FAULT=phase:item:rank:point).
 * A fault fires when the environment names this exact place, so every fault
 * test is deterministic. "*" matches anything in a field. A fifth field "hang"
 * makes the process stop there forever instead of failing (its own watchdog
 * thread still runs and ends it); "stop" makes it send itself SIGSTOP, which
 * freezes every thread, the watchdog's too, as `kill -STOP` from outside would
 * (the other ranks must notice), and goes on normally after SIGCONT; "kill"
 * makes it send itself SIGKILL, as `kill -9` would: no cleanup code runs, so
 * whatever it was writing is left as it was. */
#ifndef SRLM_FAULT_H
#define SRLM_FAULT_H

#include "core/status.h"

/* SRLM_FAILED with "injected fault at ..." when SRLM_FAULT matches, else SRLM_OK. */
srlm_status srlm_fault_point(const char *phase, long item, int rank, const char *point);

#endif
