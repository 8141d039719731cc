/* Shared by the scaling benchmarks (benchmarks/scaling/README.md): the
 * benchmark model, a clock, medians, and a per-process log of timed calls.
 *
 * scaling_train fills the log through the linker's --wrap (scaling_wrap.c):
 * srlmlib is a static library, so the trainer's calls into the model's
 * forward and backward, AdamW and srlm's collectives are redirected to timing
 * wrappers that call the real functions. The trainer runs as it is (no copy,
 * no instrumentation in src/); collectives on a 1-rank communicator, which
 * srlm skips before reaching MPI, are logged too. */
#ifndef SRLM_SCALING_COMMON_H
#define SRLM_SCALING_COMMON_H

#include <stdint.h>

#include "core/status.h"

/* The benchmark model: a Llama whose decoder layers hold ~95% of the
 * parameters (as in Llama-2-70B, unlike a 32000-vocab toy), vocab = the
 * tokenizer's, so generated ids always decode. */
typedef struct {
    int dim, layers, heads, kv_heads, ffn, max_pos;
} scaling_shape;

#define SCALING_SHAPE_DEFAULT {256, 4, 4, 4, 704, 1024}

/* Rank 0 writes WORK/model (config.json, model.safetensors, tokenizer.model
 * copied from tokenizer_path) unless it exists; everyone waits. Collective
 * over MPI_COMM_WORLD. *vocab gets the model's vocab size. */
srlm_status scaling_model_setup(const char *work, const char *tokenizer_path, const scaling_shape *shape,
                                int *vocab);

double scaling_now(void); /* CLOCK_MONOTONIC seconds */

/* ---- the call log ---- */

typedef enum {
    EV_FWD, EV_BWD, EV_ADAMW, EV_ALLREDUCE, EV_REDUCE_SCATTER, EV_ALLGATHER, EV_BCAST, EV_BARRIER, EV_N_KINDS
} scaling_ev_kind;

typedef struct {
    double  t0, t1;      /* scaling_now() at entry and return */
    int     kind;        /* scaling_ev_kind */
    int     stop_flag;   /* an allreduce of one int32 with MAX: the trainer's per-step stop flag */
    int64_t bytes;       /* collectives: the whole buffer (reduce-scatter: all blocks) */
} scaling_event;

/* Start (clearing) or stop recording. Off by default. */
void scaling_log_enable(int on);
void scaling_log_record(double t0, int kind, int64_t bytes, int stop_flag);
const scaling_event *scaling_log(int *n); /* what was recorded (at most 1 << 17 events) */

/* Medians of a double array (sorted in place); NAN for n = 0. */
double scaling_median(double *v, int n);

#endif
