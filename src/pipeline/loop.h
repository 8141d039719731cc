/* The self-rewarding loop (`srlm run`): M0 and seed data in, M1, M2, M3 ... out,
 * through a resumable run directory (DESIGN.md "The algorithm", "Run
 * directory", "Contracts / Files").
 *
 * Stages, each skipped when its outputs are complete:
 *   data/                 Open Assistant conversion (when data.oasst is set)
 *   sft-baseline/, eft/   EFT built by the pipeline (loop.build_eft without data.eft)
 *   sft-m1/ -> models/M1  SFT of M0 on IFT + EFT
 *   eval/M1/              answers on the evaluation prompts, judge quality
 *   iter-T/               T = 1 .. loop.iterations: prompts, candidates,
 *                         judgements, pairs (with reference log-probs), train ->
 *                         models/M(T+1), eval/metrics.json, summary.json
 *   summary.json          every iteration's numbers
 * Collective over every rank of the topology; rank 0 coordinates. */
#ifndef SRLM_LOOP_H
#define SRLM_LOOP_H

#include "dist/topology.h"
#include "io/config.h"

typedef struct {
    const srlm_topology *topo;              /* NULL: this process alone */
    int                  allow_config_change;
    int                  quiet;             /* no progress lines */
} srlm_loop_options;

/* Runs (or resumes) the run in cfg->run.out_dir/cfg->run.name. The config is
 * modified while it runs (model.path per stage) and restored. SRLM_INTERRUPTED
 * (exit 75) when stopped by a signal: rerun the same command to continue. */
srlm_status srlm_loop_run(srlm_config *cfg, const srlm_loop_options *o);

/* Signal-safe: stop at the next item or step boundary. */
void srlm_loop_request_stop(void);

#endif
