/* Work items of a phase, pulled by worker groups from rank 0 (DESIGN.md
 * "Coordinator and worker groups").
 *
 * A worker group is one TP group; its leader (tp rank 0) asks rank 0 for the next
 * item over the leaders communicator, tells its group which one, and the whole
 * group runs it (a TP collective); the leader writes the item's part. Rank 0 is
 * also the leader of group 0: between its own items, and before every decode step
 * of its own generation (srlm_workqueue_poll, the engine's poll hook), it answers
 * the other leaders, so a request waits at most one step. Pulling, not a static
 * split, because answers differ in length.
 *
 * Resumable: an item whose part is complete (srlm_artifact_verify) is never run
 * again; a part that fails verification is removed and redone. What an item
 * writes depends only on the item, never on the group that ran it. */
#ifndef SRLM_WORKQUEUE_H
#define SRLM_WORKQUEUE_H

#include "dist/topology.h"
#include "pipeline/parts.h"

/* Run item `item` on this rank (every rank of the group calls it together). The
 * leader appends the item's records to out (other ranks may leave it empty);
 * *work (may stay 0) counts units done for the progress line (tokens). */
typedef srlm_status (*srlm_item_fn)(void *ctx, int item, srlm_text *out, long *work);

typedef struct {
    const srlm_topology *topo;     /* NULL: this process alone */
    const char          *dir;      /* parts folder (created) */
    const char          *phase;    /* name in progress lines and fault points */
    int                  n_items;
    srlm_item_fn         run;
    void                *ctx;
    int                  quiet;    /* no progress lines */
} srlm_workqueue;

typedef struct {
    int    items_total, items_run, items_resumed;
    long   work;                   /* units reported by the items run (all groups) */
    double seconds;
} srlm_workqueue_stats;

/* Collective over every rank of q->topo. Returns when every item has a complete
 * part; SRLM_INTERRUPTED when a stop was requested (parts done so far are kept). */
srlm_status srlm_workqueue_run(const srlm_workqueue *q, srlm_workqueue_stats *stats);

/* Rank 0, while it runs an item: answer waiting requests. A no-op elsewhere and
 * outside srlm_workqueue_run. Signature fits srlm_gen_config.poll. */
srlm_status srlm_workqueue_poll(void *unused);

/* Ask every running queue to stop handing out items (signal-safe). */
void srlm_workqueue_request_stop(void);
int  srlm_workqueue_stop_requested(void);

#endif
