#include "pipeline/workqueue.h"

#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
    int        n_todo, next, released, n_leaders, done, n_total, stopping;
    long       work;
    double     t0;
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
    return srlm_comm_send(c->leaders, &reply, sizeof reply, src, TAG_REPLY);
}

static srlm_status serve_pending(coordinator *c) {
    for (;;) {
        int src;
        SRLM_CHECK(srlm_comm_iprobe(c->leaders, TAG_REQUEST, &src));
        if (src < 0) return SRLM_OK;
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
        /* waiting for other groups is progress here; a stuck rank trips its own watchdog */
        srlm_watchdog_progress(q->phase);
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
                     .leaders = t ? t->leaders : NULL};
    if (world_rank == 0) {
        c.todo = malloc(sizeof(int) * (size_t)(q->n_items > 0 ? q->n_items : 1));
        if (!c.todo) return SRLM_ERR(SRLM_FAILED, "out of memory");
        st = srlm_mkdir_p(q->dir);
        if (st == SRLM_OK) st = scan(q, c.todo, &c.n_todo);
        if (st == SRLM_OK && c.n_todo < q->n_items && !q->quiet)
            SRLM_INFO("%s: %d of %d items already complete, resuming", q->phase, q->n_items - c.n_todo, q->n_items);
    }
    /* a failed scan must not leave the others waiting for items: rank 0 aborts the
     * job when it returns an error (main calls srlm_dist_abort) */
    if (st == SRLM_OK) {
        if (world_rank == 0) st = run_coordinator(q, t ? t->tp_comm : NULL, &c);
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
    return st;
}
