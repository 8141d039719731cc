/* A watchdog thread: when no progress is reported for `timeout_s`, it prints
 * what the process was last doing and exits the process with 70 (DESIGN.md:
 * nobody waits forever; a stuck rank is ended rather than hanging the job). It
 * makes no MPI calls. Progress is one atomic store, cheap enough for every step. */
#ifndef SRLM_WATCHDOG_H
#define SRLM_WATCHDOG_H

#include "core/status.h"

/* timeout_s <= 0: no watchdog (progress calls are then no-ops). rank < 0: no rank in messages. */
srlm_status srlm_watchdog_start(double timeout_s, int rank);
/* Record progress; `what` must be a string literal (kept by pointer). */
void        srlm_watchdog_progress(const char *what);
void        srlm_watchdog_stop(void);
/* Start the watchdog again after srlm_watchdog_stop, with the timeout and rank
 * of its last start (none if that had no timeout), recording `what` (a string
 * literal) as progress. main() guards MPI_Finalize with it: finalize waits for
 * every rank, so a rank frozen after the others finished would hang them. */
void        srlm_watchdog_restart(const char *what);
/* The running watchdog's timeout in seconds; 0 when there is none. Code that
 * waits for other processes uses it to decide when they count as stuck. */
double      srlm_watchdog_timeout(void);

#endif
