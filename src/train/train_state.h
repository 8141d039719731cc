/* Trainer state beside a trainer checkpoint, so that a resumed run continues
 * exactly where it stopped (DESIGN.md "Training numerics": one file per rank plus
 * a manifest of (tp, dp)).
 *
 * File: DIR/trainer-state-rank-R.safetensors, one per rank, written atomically
 * (unique temporary name, fsync, rename, fsync DIR). It is a plain safetensors
 * file (Python's safetensors reads it) holding
 *   "adam.m", "adam.v"  F32, shape [n]: this rank's ZeRO-1 shard of the moments
 * and, in __metadata__ (string values only, as the format requires), the scalar
 * state and the manifest of the layout that wrote it:
 *   "format": "pt", "srlm.format": "srlm-trainer-state-1", "srlm.kind": "sft"|"dpo",
 *   "srlm.step", "srlm.total_steps", "srlm.data_epoch", "srlm.data_pos",
 *   "srlm.rng_key", "srlm.rng_counter", "srlm.config_hash",
 *   "srlm.tp", "srlm.dp", "srlm.rank",
 *   "srlm.bad_in_row", "srlm.recent_losses" (comma-separated, %.17g: exact)
 * every number as a decimal string, so 64-bit values are exact (JSON numbers
 * are doubles). The last two (loss-spike detection) are optional when reading:
 * a file without them reads as 0 and no losses. Every rank's file carries the
 * manifest (tp, dp), so any one file says how the state is sharded. (The
 * integrity manifest of a whole checkpoint folder is train/ckpt_manifest.h.) */
#ifndef SRLM_TRAIN_STATE_H
#define SRLM_TRAIN_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

/* Most good steps' losses the trainer keeps for loss-spike detection (the
 * upper bound of train.X.loss_spike_window). */
#define SRLM_LOSS_WINDOW_MAX 1000

typedef struct {
    long     step;             /* optimizer steps done */
    long     total_steps;
    long     data_epoch, data_pos; /* position in the (seeded, shuffled) example order */
    uint64_t rng_key;          /* the trainer's counter-based RNG key (core/rng.h) */
    uint64_t rng_counter;
    uint64_t config_hash;      /* srlm_config_hash of the run */
    int      tp, dp, rank;     /* manifest of the layout that wrote it */
    char     kind[8];          /* "sft" or "dpo" */
    long     bad_in_row;       /* skipped steps (non-finite or loss spikes) in a row up to step */
    int      n_recent;         /* losses of the last n_recent good steps, oldest first: the */
    double   recent_loss[SRLM_LOSS_WINDOW_MAX]; /* running mean that spikes are measured against */
} srlm_train_state;

/* "DIR/trainer-state-rank-R.safetensors" into buf. */
srlm_status srlm_train_state_path(char *buf, size_t cap, const char *dir, int rank);

/* Write this rank's file (s->rank names it). DIR is created when missing.
 * s->kind must be "sft" or "dpo"; 1 <= tp, dp and 0 <= rank < tp * dp. */
srlm_status srlm_train_state_save(const char *dir, const srlm_train_state *s, const float *m,
                                  const float *v, size_t n);

/* Load rank `rank`'s file and check it against this run. On entry s->tp is this
 * run's tp (another tp is refused: the moments are sharded by it); on success *s
 * is the saved state (including its dp, which may differ from this run's: the
 * caller reshards). Refused with SRLM_BAD_INPUT naming the file: a missing,
 * truncated or corrupt file, another kind, another tp, a file of another rank,
 * and n different from the saved shard's size (saying expected and found). m and
 * v are caller buffers of n floats; they are untouched on failure. */
srlm_status srlm_train_state_load(const char *dir, int rank, const char *kind, srlm_train_state *s,
                                  float *m, float *v, size_t n);

/* The saved state and shard size of rank `rank`'s file, without the checks
 * against a run (for planning a reshard to another dp). */
srlm_status srlm_train_state_peek(const char *dir, int rank, srlm_train_state *s, size_t *n);

#endif
