/* The trainer's state, shared by trainer.c (the step loop, checkpoints,
 * metrics) and zero1.c (each dp rank's optimizer shard: ZeRO-1). Private to
 * src/train. */
#ifndef SRLM_TRAINER_INTERNAL_H
#define SRLM_TRAINER_INTERNAL_H

#include "dist/topology.h"
#include "io/checkpoint.h"
#include "io/tokenizer.h"
#include "model/llama_train.h"
#include "train/dataset.h"
#include "train/optimizer.h"
#include "train/train_state.h"
#include "train/trainer.h"

typedef struct {
    const srlm_config       *cfg;
    const srlm_train_config *tc;
    const srlm_train_job    *job;
    const char              *kind_name;
    char                     tok_path[1200];

    srlm_checkpoint  ck;
    srlm_backend    *be;
    srlm_llama       m;
    srlm_tokenizer  *tok;
    srlm_llama_grads g;
    srlm_train_acts  acts;
    float           *adam_m, *adam_v;
    srlm_param_segment *segs;      /* the model's tensors in the flat layout */
    int              n_segs;

    /* distribution: tp ranks share the model; dp replicas split each batch and
     * the optimizer state (ZeRO-1: this rank updates [shard_off, shard_off + n_shard)) */
    const srlm_topology *topo;
    srlm_comm       *world, *tp_comm, *dp_comm;
    int              rank, dp_rank, dp;
    int64_t          n_pad, n_shard, shard_off;
    float           *gshard;        /* this rank's summed gradient shard (host; dp > 1 without NCCL) */
    /* the optimizer's views, in the backend's memory: the gradient shard (a
     * slice of the gradients when dp = 1, else gshard or a device copy of it)
     * and the moments (t->adam_m / adam_v themselves on a host-memory backend;
     * on a device they are the host staging for checkpoints) */
    srlm_view        gshard_v, m_v, v_v;
    /* backend.dtype bfloat16: this rank's ZeRO-1 shard of the fp32 master weights
     * ([shard_off, shard_off + n_shard) of the flat layout, zero past the model),
     * which AdamW updates and the bf16 weights are rounded from; data NULL for an
     * F32 model, whose weights are their own master */
    srlm_view        master_v;
    int              own_views;     /* m_v, v_v (and gshard_v when dp > 1) came from ops->alloc */
    float           *host_flat;     /* device memory, dp > 1, no dp_dev: host staging of gradients / weights */
    srlm_comm       *dp_dev;        /* dp > 1 on a backend with device collectives (NCCL), else NULL */

    srlm_sft_data sft;
    srlm_dpo_data dpo;
    int           n_examples, max_len; /* longest sequence of any example */
    size_t        act_tokens;          /* token rows the activations hold (a micro-batch's, packed) */
    int          *perm;
    long          perm_epoch;

    int   *ids, *len, *first;            /* micro-batch scratch (first: a sequence's first row with a log-prob) */
    float *logp, *dlogp;
    int    micro_seqs;                 /* sequences per micro-batch */

    srlm_train_state st;
    long             total_steps;
    int              opened;           /* 1 ck, 2 model, 4 grads, 8 acts */
} trainer;


/* ---- ZeRO-1 (zero1.c): this rank updates [shard_off, shard_off + n_shard) of
 * the flat layout; the moments, and a bf16 model's fp32 master weights, exist
 * only for that shard ---- */

/* The optimizer's views (gshard_v, m_v, v_v): t->adam_m / adam_v / gshard on a
 * host-memory backend, the backend's own memory otherwise; the device
 * communicator over dp when the backend offers one. */
srlm_status zero1_views_new(trainer *t);
/* A bf16 model: keep this rank's shard of the fp32 weights the load put in
 * m.master (master_v) and free the rest. No-op for an fp32 model. */
srlm_status zero1_master_new(trainer *t);
/* Moments between their views and t->adam_m / adam_v (to_host 1: before a
 * save; 0: after a load). No-op on a host-memory backend. */
srlm_status zero1_sync_moments(trainer *t, int to_host);
/* Sum the replicas' gradients into this rank's shard (gshard_v). */
srlm_status zero1_reduce_scatter(trainer *t);
/* Squared norm of this rank's gradient shard over the tensors it counts. */
srlm_status zero1_sum_squares(trainer *t, double *sum);
/* AdamW on this rank's shard of every tensor (decay per tensor). */
srlm_status zero1_adamw(trainer *t, const srlm_adamw_hparams *h, long step);
/* Every replica gets every updated shard of the weights (a bf16 model: its
 * master shards rounded to bf16). Collective over dp. */
srlm_status zero1_allgather_params(trainer *t);
/* Before a save, lend the model its fp32 master gathered from every shard
 * (srlm_llama_save then writes it); _end takes it back. Collective over dp;
 * no-op for an fp32 model. */
srlm_status zero1_master_lent(trainer *t);
void        zero1_master_lent_end(trainer *t);
/* This rank's optimizer shard from checkpoint folder sd, resharded when it was
 * written with another dp. */
srlm_status zero1_load_state(trainer *t, const char *sd);

#endif
