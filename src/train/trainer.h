/* The SFT and DPO trainer on one rank: data order, micro-batches and gradient
 * accumulation, the losses, clipping, AdamW, checkpoints that resume exactly,
 * progress and metrics. */
#ifndef SRLM_TRAINER_H
#define SRLM_TRAINER_H

#include "dist/topology.h"
#include "io/config.h"

typedef enum { SRLM_TRAIN_SFT, SRLM_TRAIN_DPO } srlm_train_kind;

typedef struct {
    srlm_train_kind kind;
    const char     *data_path;   /* JSONL (see dataset.h) */
    const char     *out_dir;     /* train/ checkpoints, model/ (the result), metrics.jsonl */
    long            stop_after;  /* > 0: stop after this many optimizer steps in this
                                  * invocation, checkpoint, return SRLM_INTERRUPTED */
    int             quiet;       /* no progress line */
    const srlm_topology *topo;   /* NULL: this process alone (tp = dp = 1) */
} srlm_train_job;

/* Collective over every rank of job->topo: all call it with the same config.
 * Runs the job to the end, resuming from the newest complete checkpoint in
 * out_dir/train when there is one. Returns SRLM_INTERRUPTED (exit 75) when
 * stopped by stop_after or by SIGTERM/SIGUSR1, after saving a checkpoint. */
srlm_status srlm_train(const srlm_config *cfg, const srlm_train_job *job);

/* Ask a running srlm_train to stop at the next step boundary (signal-safe). */
void srlm_train_request_stop(void);

#endif
