#include "core/watchdog.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static pthread_t g_thread;
static atomic_int g_running;
static atomic_llong g_last_ns;
static _Atomic(const char *) g_what;
static double g_timeout_s;
static int g_rank;

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void *watch(void *arg) {
    (void)arg;
    while (atomic_load(&g_running)) {
        struct timespec tick = {0, 200 * 1000 * 1000};
        nanosleep(&tick, NULL);
        double idle = (double)(now_ns() - atomic_load(&g_last_ns)) * 1e-9;
        if (atomic_load(&g_running) && idle > g_timeout_s) {
            char msg[256];
            int n = g_rank >= 0 ? snprintf(msg, sizeof msg, "[rank %d] ", g_rank) : 0;
            snprintf(msg + n, sizeof msg - (size_t)n,
                     "srlm: watchdog: no progress for %.0f s (run.watchdog_s = %g; last: %s); exiting with 70\n",
                     idle, g_timeout_s, atomic_load(&g_what));
            /* write(2) and _exit: safe whatever the stuck thread holds (stdio locks, MPI) */
            ssize_t ignored = write(2, msg, __builtin_strlen(msg));
            (void)ignored;
            _exit(SRLM_WATCHDOG);
        }
    }
    return NULL;
}

srlm_status srlm_watchdog_start(double timeout_s, int rank) {
    atomic_store(&g_last_ns, now_ns());
    atomic_store(&g_what, "start");
    if (!(timeout_s > 0) || atomic_load(&g_running)) return SRLM_OK;
    g_timeout_s = timeout_s;
    g_rank = rank;
    atomic_store(&g_running, 1);
    if (pthread_create(&g_thread, NULL, watch, NULL) != 0) {
        atomic_store(&g_running, 0);
        return SRLM_ERR(SRLM_FAILED, "cannot start the watchdog thread");
    }
    return SRLM_OK;
}

void srlm_watchdog_progress(const char *what) {
    atomic_store(&g_last_ns, now_ns());
    atomic_store(&g_what, what);
}

void srlm_watchdog_stop(void) {
    if (!atomic_exchange(&g_running, 0)) return;
    pthread_join(g_thread, NULL);
}

void srlm_watchdog_restart(const char *what) {
    if (g_timeout_s > 0 && !atomic_load(&g_running) && srlm_watchdog_start(g_timeout_s, g_rank) != SRLM_OK)
        srlm_clear_error(); /* no thread: nothing guards what follows, as before */
    srlm_watchdog_progress(what);
}

double srlm_watchdog_timeout(void) { return atomic_load(&g_running) ? g_timeout_s : 0; }
