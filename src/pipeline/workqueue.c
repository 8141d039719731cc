#include "pipeline/workqueue.h"

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/fault.h"
#include "core/log.h"
#include "core/watchdog.h"
#include "io/fsutil.h"

enum { TAG_REQUEST = 31001, TAG_REPLY = 31002 };

static volatile sig_atomic_t stop_flag = 0;

void srlm_workqueue_request_stop(void) { stop_flag = 1; }
int  srlm_workqueue_stop_requested(void) { return stop_flag != 0; }

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Rank 0's side of a running queue. */
typedef struct {
    const srlm_workqueue *q;
    srlm_comm *leaders;
    int       *todo;
    int        n_todo, next, released, n_leaders, done, n_total, stopping, tp;
    long       work;
    double     t0;
    /* per leader (index in the leaders communicator): when it was last heard
     * from (its last request, or the queue's start), the item it holds (-1:
     * none yet), and whether it was released (told that no item is left) */
    double    *heard;
    int       *holds, *gone;
} coordinator;

static coordinator *active = NULL; /* set while rank 0 runs a queue */

static void progress(coordinator *c) {
    if (c->q->quiet) return;
    double el = now_s() - c->t0, rate = el > 0 ? (double)c->work / el : 0;
    int left = c->n_todo - c->done;
    double eta = c->done > 0 ? el / c->done * left : 0;
    SRLM_INFO("%s: %d/%d items (%d resumed), %.0f tokens/s, elapsed %.0f s, ETA %.0f s", c->q->phase,
              c->n_total - left, c->n_total, c->n_total - c->n_todo, rate, el, eta);
}

static int32_t next_item(coordinator *c) {
    if (c->stopping || stop_flag || c->next >= c->n_todo) return -1;
    return c->todo[c->next++];
}

/* One request from leader `src`: {finished item or -1, work units, stop flag}. */
static srlm_status serve_one(coordinator *c, int src) {
    int64_t msg[3];
    SRLM_CHECK(srlm_comm_recv(c->leaders, msg, sizeof msg, src, TAG_REQUEST));
    if (msg[2]) c->stopping = 1;
    if (msg[0] >= 0) {
        c->done++;
        c->work += msg[1];
        progress(c);
    }
    int32_t reply = next_item(c);
    if (reply < 0) c->released++;
    if (src > 0 && src < c->n_leaders) {
        c->heard[src] = now_s();
        c->holds[src] = reply;
        c->gone[src] = reply < 0;
    }
    /* hearing from another group is progress for rank 0, which may have nothing
     * else to do while the last items run elsewhere */
    srlm_watchdog_progress(c->q->phase);
    return srlm_comm_send(c->leaders, &reply, sizeof reply, src, TAG_REPLY);
}

/* A group whose leader has not been heard from for run.watchdog_s, while it
 * holds an item or before its first request, is stuck: a rank of it is stopped
 * (SIGSTOP, a frozen node), hung or dead. Its own watchdog cannot always say so
 * (a stopped process's watchdog thread is stopped too), and when the group is
 * alone in waiting for nothing (tp = 1) no other rank waits for it in a
 * collective, so rank 0 ends the job. An item takes at most run.watchdog_s on
 * a live group: its ranks' watchdogs would end it otherwise. */
static srlm_status check_leaders(const coordinator *c) {
    double limit = srlm_watchdog_timeout();
    if (!(limit > 0)) return SRLM_OK;
    double now = now_s();
    for (int l = 1; l < c->n_leaders; l++) {
        if (c->gone[l] || now - c->heard[l] <= limit) continue;
        char holds[64] = "before asking for its first item";
        if (c->holds[l] >= 0) snprintf(holds, sizeof holds, "while it runs item %d", c->holds[l]);
        return SRLM_ERR(SRLM_WATCHDOG, "%s: worker group %d (leader rank %d) has not been heard from for %.0f s %s "
                        "(run.watchdog_s = %g): a rank of that group is stopped, hung or dead; ending the job "
                        "(rerun the same command to resume)", c->q->phase, l, l * c->tp, now - c->heard[l], holds,
                        limit);
    }
    return SRLM_OK;
}

/* Answer every waiting request, then look for a silent group (after serving,
 * so that a request that has arrived is never taken for silence). */
static srlm_status serve_pending(coordinator *c) {
    for (;;) {
        int src;
        SRLM_CHECK(srlm_comm_iprobe(c->leaders, TAG_REQUEST, &src));
        if (src < 0) return check_leaders(c);
        SRLM_CHECK(serve_one(c, src));
    }
}

srlm_status srlm_workqueue_poll(void *unused) {
    (void)unused;
    return active ? serve_pending(active) : SRLM_OK;
}

/* Run one item on this rank; the leader writes its part. */
static srlm_status run_item(const srlm_workqueue *q, int item, int world_rank, int leader, long *work) {
    srlm_text out = {0};
    *work = 0;
    srlm_watchdog_progress(q->phase); /* an item begins: the watchdog's "last" names the phase */
    srlm_status st = srlm_fault_point(q->phase, item, world_rank, "start");
    if (st == SRLM_OK) st = q->run(q->ctx, item, &out, work);
    if (st == SRLM_OK) st = srlm_text_status(&out);
    if (st == SRLM_OK && leader) {
        char path[1200];
        st = srlm_part_path(path, sizeof path, q->dir, item);
        if (st == SRLM_OK) st = srlm_fault_point(q->phase, item, world_rank, "write");
        if (st == SRLM_OK) st = srlm_artifact_write(path, out.s ? out.s : "", out.len, out.count);
    }
    srlm_text_free(&out);
    srlm_watchdog_progress(q->phase);
    return st;
}

/* The items without a complete, verified part, in order. */
static srlm_status scan(const srlm_workqueue *q, int *todo, int *n_todo) {
    *n_todo = 0;
    for (int i = 0; i < q->n_items; i++) {
        char path[1200];
        SRLM_CHECK(srlm_part_path(path, sizeof path, q->dir, i));
        if (srlm_artifact_done(path)) {
            if (srlm_artifact_verify(path, NULL) == SRLM_OK) continue;
            SRLM_WARN("%s: %s; the item is run again", q->phase, srlm_last_error());
            SRLM_CHECK(srlm_artifact_remove(path));
        }
        todo[(*n_todo)++] = i;
    }
    return SRLM_OK;
}

static srlm_status run_coordinator(const srlm_workqueue *q, srlm_comm *tp, coordinator *c) {
    const int world_rank = 0;
    for (;;) {
        SRLM_CHECK(serve_pending(c));
        int32_t item = next_item(c);
        if (item >= 0) {
            long work;
            SRLM_CHECK(srlm_comm_broadcast(tp, &item, sizeof item, 0));
            active = c;
            srlm_status st = run_item(q, item, world_rank, 1, &work);
            active = NULL;
            SRLM_CHECK(st);
            c->done++;
            c->work += work;
            progress(c);
            continue;
        }
        if (c->released >= c->n_leaders - 1) break;
        struct timespec nap = {0, 1000000}; /* 1 ms: the others are busy with items */
        nanosleep(&nap, NULL);
        /* Waiting is not progress: only a request served is (serve_one), and a
         * group silent for run.watchdog_s ends the job (check_leaders). */
    }
    int32_t end = -1;
    return srlm_comm_broadcast(tp, &end, sizeof end, 0);
}

static srlm_status run_leader(const srlm_workqueue *q, const srlm_topology *t) {
    int64_t msg[3] = {-1, 0, 0};
    for (;;) {
        msg[2] = stop_flag != 0;
        SRLM_CHECK(srlm_comm_send(t->leaders, msg, sizeof msg, 0, TAG_REQUEST));
        int32_t item;
        SRLM_CHECK(srlm_comm_recv(t->leaders, &item, sizeof item, 0, TAG_REPLY));
        SRLM_CHECK(srlm_comm_broadcast(t->tp_comm, &item, sizeof item, 0));
        if (item < 0) return SRLM_OK;
        long work;
        SRLM_CHECK(run_item(q, item, t->world_rank, 1, &work));
        msg[0] = item;
        msg[1] = work;
    }
}

static srlm_status run_member(const srlm_workqueue *q, const srlm_topology *t) {
    for (;;) {
        int32_t item;
        SRLM_CHECK(srlm_comm_broadcast(t->tp_comm, &item, sizeof item, 0));
        if (item < 0) return SRLM_OK;
        long work;
        SRLM_CHECK(run_item(q, item, t->world_rank, 0, &work));
    }
}

srlm_status srlm_workqueue_run(const srlm_workqueue *q, srlm_workqueue_stats *stats) {
    const srlm_topology *t = q->topo;
    const int world_rank = t ? t->world_rank : 0;
    double t0 = now_s();
    if (stats) memset(stats, 0, sizeof *stats);
    srlm_status st = SRLM_OK;
    coordinator c = {.q = q, .t0 = t0, .n_total = q->n_items, .n_leaders = t ? t->dp : 1,
                     .leaders = t ? t->leaders : NULL, .tp = t ? t->tp : 1};
    if (world_rank == 0) {
        c.todo = malloc(sizeof(int) * (size_t)(q->n_items > 0 ? q->n_items : 1));
        c.heard = malloc(sizeof(double) * (size_t)c.n_leaders);
        c.holds = malloc(sizeof(int) * (size_t)c.n_leaders);
        c.gone = calloc((size_t)c.n_leaders, sizeof(int));
        if (!c.todo || !c.heard || !c.holds || !c.gone) {
            free(c.todo); free(c.heard); free(c.holds); free(c.gone);
            return SRLM_ERR(SRLM_FAILED, "out of memory");
        }
        st = srlm_mkdir_p(q->dir);
        if (st == SRLM_OK) st = scan(q, c.todo, &c.n_todo);
        if (st == SRLM_OK && c.n_todo < q->n_items && !q->quiet)
            SRLM_INFO("%s: %d of %d items already complete, resuming", q->phase, q->n_items - c.n_todo, q->n_items);
    }
    /* a failed scan must not leave the others waiting for items: rank 0 aborts the
     * job when it returns an error (main calls srlm_dist_abort) */
    if (st == SRLM_OK) {
        if (world_rank == 0) {
            for (int l = 0; l < c.n_leaders; l++) { /* the other groups' silence counts from here */
                c.heard[l] = now_s();
                c.holds[l] = -1;
            }
            st = run_coordinator(q, t ? t->tp_comm : NULL, &c);
        }
        else if (t->tp_rank == 0) st = run_leader(q, t);
        else st = run_member(q, t);
    }
    active = NULL;
    if (st == SRLM_OK) {
        int32_t flags[2] = {stop_flag != 0 || c.stopping, world_rank == 0 ? c.n_todo - c.done : 0};
        st = srlm_comm_allreduce(t ? t->world : NULL, flags, 2, SRLM_COMM_I32, SRLM_REDUCE_MAX);
        if (st == SRLM_OK && stats) {
            stats->items_total = q->n_items;
            stats->items_run = c.done;
            stats->items_resumed = q->n_items - c.n_todo;
            stats->work = c.work;
            stats->seconds = now_s() - t0;
        }
        if (st == SRLM_OK && (flags[0] || flags[1] > 0))
            st = SRLM_ERR(SRLM_INTERRUPTED, "%s: stopped on request with %d item(s) left; rerun the same command to resume",
                          q->phase, world_rank == 0 ? c.n_todo - c.done : flags[1]);
    }
    free(c.todo);
    free(c.heard);
    free(c.holds);
    free(c.gone);
    return st;
}
