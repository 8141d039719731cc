/* ZeRO-1: each dp rank's shard of the optimizer (DESIGN.md "Parallel layout").
 * Gradients are reduce-scattered so that a rank holds the summed gradient of
 * its shard; AdamW updates that shard of the weights (a bf16 model: of its
 * fp32 master weights, which exist only for the shard) with the shard's
 * moments; the updated shards are all-gathered into every replica's weights.
 * Device memory with NCCL does all of it on the backend's stream; otherwise the
 * collectives go through the host with MPI. */
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "train/trainer_internal.h"

/* The host gradient shard that MPI's reduce-scatter writes (dp > 1 without
 * device collectives). */
static srlm_status alloc_host_shard(trainer *t) {
    t->gshard = malloc(sizeof(float) * (size_t)t->n_shard);
    if (!t->gshard)
        return SRLM_ERR(SRLM_FAILED, "out of memory for the gradient shard (%lld parameters)", (long long)t->n_shard);
    return SRLM_OK;
}

/* The optimizer's views (see the trainer struct). A host-memory backend works
 * on t->adam_m, adam_v and gshard directly; a device one gets its own. */
srlm_status zero1_views_new(trainer *t) {
    const srlm_backend_ops *op = t->be->ops;
    const int64_t n = t->n_shard;
    if (t->dp == 1) t->gshard_v = srlm_view_carve(t->g.flat, 0, 1, n);
    if (op->host_memory) {
        t->m_v = (srlm_view){t->adam_m, SRLM_F32, 1, n, n};
        t->v_v = (srlm_view){t->adam_v, SRLM_F32, 1, n, n};
        if (t->dp > 1) {
            SRLM_CHECK(alloc_host_shard(t));
            t->gshard_v = (srlm_view){t->gshard, SRLM_F32, 1, n, n};
        }
        return SRLM_OK;
    }
    t->own_views = 1;
    SRLM_CHECK(op->alloc(t->be, &t->m_v, SRLM_F32, 1, n, "AdamW first moments"));
    SRLM_CHECK(op->alloc(t->be, &t->v_v, SRLM_F32, 1, n, "AdamW second moments"));
    SRLM_CHECK(op->fill(t->be, &t->m_v, 0.0f)); /* device memory comes uninitialised */
    SRLM_CHECK(op->fill(t->be, &t->v_v, 0.0f));
    if (t->dp > 1) {
        SRLM_CHECK(op->alloc(t->be, &t->gshard_v, SRLM_F32, 1, n, "the gradient shard"));
        if (op->device_comm) SRLM_CHECK(op->device_comm(t->be, t->dp_comm, &t->dp_dev));
        if (t->dp_dev) return SRLM_OK; /* NCCL reduces into gshard_v itself */
        SRLM_CHECK(alloc_host_shard(t));
        t->host_flat = malloc(sizeof(float) * (size_t)t->n_pad);
        if (!t->host_flat)
            return SRLM_ERR(SRLM_FAILED, "out of memory staging %lld gradients on the host", (long long)t->n_pad);
    }
    return SRLM_OK;
}

/* The first `have` elements of this rank's updated shard of the F32 weights of
 * record: the master shard, or the weights' own slice for an F32 model. */
static srlm_view own_shard(const trainer *t, int64_t have) {
    return t->master_v.data ? srlm_view_carve(t->master_v, 0, 1, have)
                            : srlm_view_carve(t->m.params, t->shard_off, 1, have);
}

static int64_t shard_have(const trainer *t) {
    int64_t have = t->m.n_params_local - t->shard_off;
    return have < 0 ? 0 : have > t->n_shard ? t->n_shard : have;
}

/* A BF16 model: keep this rank's shard of the fp32 weights the load read into
 * m.master, and give the rest back (ZeRO-1: 4/dp bytes per weight, not 4). */
srlm_status zero1_master_new(trainer *t) {
    if (!t->m.master.data) return SRLM_OK;
    srlm_backend *be = t->be;
    const int64_t have = shard_have(t);
    SRLM_CHECK(be->ops->alloc(be, &t->master_v, SRLM_F32, 1, t->n_shard, "the master weights' shard (fp32)"));
    SRLM_CHECK(be->ops->fill(be, &t->master_v, 0.0f));
    if (have > 0) {
        srlm_view src = srlm_view_carve(t->m.master, t->shard_off, 1, have), dst = own_shard(t, have);
        SRLM_CHECK(be->ops->copy(be, &dst, &src));
    }
    be->ops->free(be, &t->m.master);
    return SRLM_OK;
}

/* This rank's slot of `all` (a view over the free gradient buffer, n_pad
 * elements of F32 or BF16) = its updated shard, converted to all's dtype, and
 * zeros to n_shard: ready for an in-place all-gather on the device. */
static srlm_status put_slot(trainer *t, srlm_view all) {
    srlm_backend *be = t->be;
    const int64_t have = shard_have(t);
    if (have > 0) {
        srlm_view slot = srlm_view_carve(all, t->shard_off, 1, have), mine = own_shard(t, have);
        SRLM_CHECK(be->ops->copy(be, &slot, &mine));
    }
    if (have == t->n_shard) return SRLM_OK;
    srlm_view pad = srlm_view_carve(all, t->shard_off + have, 1, t->n_shard - have);
    return be->ops->fill(be, &pad, 0.0f);
}

/* Every replica's updated shard of the F32 weights of record into the gradient
 * buffer (free after the optimizer step), padded to n_shard; *full is its first
 * n_params_local elements, in the backend's memory. dp > 1; collective over dp. */
static srlm_status gather_weights(trainer *t, srlm_view *full) {
    srlm_backend *be = t->be;
    const int64_t have = shard_have(t);
    srlm_view mine = own_shard(t, have);
    *full = srlm_view_carve(t->g.flat, 0, 1, t->m.n_params_local);
    if (t->dp_dev) { /* in place on the device: this rank's slot, then an in-place all-gather */
        SRLM_CHECK(put_slot(t, srlm_view_carve(t->g.flat, 0, 1, t->n_pad)));
        float *flat = t->g.flat.data;
        return srlm_comm_allgather_f32(t->dp_dev, flat + t->shard_off, flat, (size_t)t->n_shard);
    }
    const int host = be->ops->host_memory;
    float *gflat = host ? t->g.flat.data : t->host_flat; /* the gradients are free now */
    if (host) memcpy(gflat + t->shard_off, mine.data, sizeof(float) * (size_t)have);
    else if (have > 0) SRLM_CHECK(be->ops->download(be, gflat + t->shard_off, &mine));
    memset(gflat + t->shard_off + have, 0, sizeof(float) * (size_t)(t->n_shard - have));
    SRLM_CHECK(srlm_comm_allgather_f32(t->dp_comm, gflat + t->shard_off, gflat, (size_t)t->n_shard));
    return host ? SRLM_OK : be->ops->upload(be, full, gflat);
}

/* Before a save: a BF16 model's checkpoints hold its fp32 master weights, so
 * that a resumed run continues from their exact bits. The shards are gathered
 * into the gradient buffer and lent to the model as its master (srlm_llama_save
 * reads srlm_llama_record_view); zero1_master_lent_end takes them back. Collective over dp. */
srlm_status zero1_master_lent(trainer *t) {
    if (!t->master_v.data) return SRLM_OK;
    if (t->dp == 1) {
        t->m.master = own_shard(t, t->m.n_params_local);
        return SRLM_OK;
    }
    return gather_weights(t, &t->m.master);
}

void zero1_master_lent_end(trainer *t) { memset(&t->m.master, 0, sizeof t->m.master); }

/* Device memory: the moments between their views and the host arrays that
 * checkpoints read and write (to_host = 1 before a save, 0 after a load). */
srlm_status zero1_sync_moments(trainer *t, int to_host) {
    if (!t->own_views) return SRLM_OK;
    srlm_backend *be = t->be;
    if (to_host) {
        SRLM_CHECK(be->ops->download(be, t->adam_m, &t->m_v));
        return be->ops->download(be, t->adam_v, &t->v_v);
    }
    SRLM_CHECK(be->ops->upload(be, &t->m_v, t->adam_m));
    return be->ops->upload(be, &t->v_v, t->adam_v);
}

/* Slice [a, b) of the flat layout, restricted to this rank's shard, in the
 * views of the weights, the gradient shard and the moments. */
typedef struct { srlm_view p, g, m, v; } shard_slice;
static shard_slice slice_of(const trainer *t, int64_t a, int64_t b) {
    const int64_t lo = t->shard_off;
    srlm_view p = t->master_v.data ? srlm_view_carve(t->master_v, a - lo, 1, b - a)
                                   : srlm_view_carve(t->m.params, a, 1, b - a);
    shard_slice s = {p, srlm_view_carve(t->gshard_v, a - lo, 1, b - a),
                     srlm_view_carve(t->m_v, a - lo, 1, b - a), srlm_view_carve(t->v_v, a - lo, 1, b - a)};
    return s;
}

/* The part [*a, *b) of segment i in this rank's shard; 0 when it has none. */
static int segment_in_shard(const trainer *t, int i, int64_t *a, int64_t *b) {
    const srlm_param_segment *sg = &t->segs[i];
    const int64_t lo = t->shard_off, hi = t->shard_off + t->n_shard;
    *a = sg->off > lo ? sg->off : lo;
    *b = sg->off + sg->n < hi ? sg->off + sg->n : hi;
    return *a < *b;
}

/* The bf16 all-gather slots of a BF16 model over dp > 1: the gradient buffer
 * (free once reduce-scattered into the shard) seen as n_pad bf16 values; rank
 * r's slot is [shard_off, shard_off + n_shard). */
static srlm_view param_slots(const trainer *t) { return (srlm_view){t->g.flat.data, SRLM_BF16, 1, t->n_pad, t->n_pad}; }

/* Where AdamW writes the bf16 working weights as it updates the fp32 master
 * (one pass over the master instead of two), if anywhere: one replica: the
 * model's own weights, and zero1_allgather_params has nothing left to do; dp > 1
 * with collectives on the backend's memory (NCCL, or MPI on host memory): this
 * rank's all-gather slot, which allgather_params_bf16 then sends. The segments
 * tile the flat layout, so every value of the slot is written. */
static int adamw_writes_params(const trainer *t) { return t->dp == 1 && t->master_v.data; }
static int adamw_writes_slots(const trainer *t) {
    return t->dp > 1 && t->master_v.data && (t->dp_dev || t->be->ops->host_memory);
}

/* Segment i gets weight decay: a matrix or embedding, with a decay set. */
static int segment_decays(const trainer *t, int i) { return t->segs[i].decay && t->tc->weight_decay > 0; }

/* AdamW on the part of each tensor that falls in this rank's shard. Neighbours
 * in the flat layout that share the decay flag share every constant, so a run
 * of them is one call (a layer's attention matrices, its MLP matrices; without
 * weight decay the whole shard): on a GPU, 4 launches a layer instead of 9. */
srlm_status zero1_adamw(trainer *t, const srlm_adamw_hparams *h, long step) {
    /* the bf16 values' destination, indexed by the flat layout's offsets */
    const srlm_view slots = param_slots(t);
    const srlm_view *dest = adamw_writes_params(t) ? &t->m.params : adamw_writes_slots(t) ? &slots : NULL;
    for (int i = 0; i < t->n_segs; i++) {
        int64_t a, b, a2, b2;
        if (!segment_in_shard(t, i, &a, &b)) continue;
        const int decay = segment_decays(t, i);
        while (i + 1 < t->n_segs && segment_decays(t, i + 1) == decay &&
               segment_in_shard(t, i + 1, &a2, &b2) && a2 == b) {
            b = b2;
            i++;
        }
        const srlm_adamw_consts c = srlm_adamw_consts_make(h, step + 1, decay);
        shard_slice s = slice_of(t, a, b);
        srlm_view work = dest ? srlm_view_carve(*dest, a, 1, b - a) : (srlm_view){0};
        SRLM_CHECK(t->be->ops->adamw(t->be, &s.p, &s.g, &s.m, &s.v, dest ? &work : NULL, &c));
    }
    return SRLM_OK;
}

/* Squared norm of this rank's gradient shard over the tensors it counts: one
 * call for all of them (a device waits once), the pieces added in order. */
srlm_status zero1_sum_squares(trainer *t, double *sum) {
    *sum = 0;
    const size_t cap = (size_t)(t->n_segs > 0 ? t->n_segs : 1);
    srlm_view *views = calloc(cap, sizeof *views);
    double *parts = calloc(cap, sizeof *parts);
    if (!views || !parts) {
        free(views);
        free(parts);
        return SRLM_ERR(SRLM_FAILED, "out of memory for the gradient norm's %d pieces", t->n_segs);
    }
    int n = 0;
    for (int i = 0; i < t->n_segs; i++) {
        int64_t a, b;
        if (!segment_in_shard(t, i, &a, &b) || !t->segs[i].counted) continue;
        views[n++] = slice_of(t, a, b).g;
    }
    srlm_status st = t->be->ops->sum_squares(t->be, views, n, parts);
    for (int i = 0; i < n && st == SRLM_OK; i++) *sum += parts[i];
    free(views);
    free(parts);
    return st;
}

/* ZeRO-1: sum the replicas' gradients into this rank's shard (gshard_v). */
srlm_status zero1_reduce_scatter(trainer *t) {
    if (t->dp == 1) return SRLM_OK; /* gshard_v is the gradients themselves */
    if (t->dp_dev) { /* device to device, on the backend's stream */
        SRLM_CHECK(t->be->ops->fill_cols(t->be, &t->g.flat, t->m.n_params_local, 0.0f)); /* the padding */
        return srlm_comm_reduce_scatter_f32(t->dp_dev, t->g.flat.data, t->gshard_v.data, (size_t)t->n_shard);
    }
    const int host = t->be->ops->host_memory;
    float *gflat = host ? t->g.flat.data : t->host_flat;
    if (!host) SRLM_CHECK(t->be->ops->download(t->be, gflat, &t->g.flat));
    memset(gflat + t->m.n_params_local, 0, sizeof(float) * (size_t)(t->n_pad - t->m.n_params_local));
    SRLM_CHECK(srlm_comm_reduce_scatter_f32(t->dp_comm, gflat, t->gshard, (size_t)t->n_shard));
    return host ? SRLM_OK : t->be->ops->upload(t->be, &t->gshard_v, t->gshard);
}

/* A BF16 model over dp > 1: each rank's slot holds its master shard rounded
 * to bf16 (written by AdamW, adamw_writes_slots) and the slots are
 * all-gathered, 2 bytes a weight on the wire instead of 4; the values are
 * those of rounding the gathered fp32 master. */
static srlm_status allgather_params_bf16(trainer *t) {
    srlm_backend *be = t->be;
    const int64_t have = shard_have(t);
    if (t->dp_dev) { /* on the device, in place */
        srlm_view all = param_slots(t);
        if (have < t->n_shard) {
            srlm_view pad = srlm_view_carve(all, t->shard_off + have, 1, t->n_shard - have);
            SRLM_CHECK(be->ops->fill(be, &pad, 0.0f));
        }
        uint16_t *flat = all.data;
        SRLM_CHECK(srlm_comm_allgather(t->dp_dev, flat + t->shard_off, flat, (size_t)t->n_shard, SRLM_COMM_BF16));
        srlm_view gathered = srlm_view_carve(all, 0, 1, t->m.n_params_local);
        return be->ops->copy(be, &t->m.params, &gathered);
    }
    if (be->ops->host_memory) { /* MPI on host memory */
        uint16_t *flat = t->g.flat.data;
        memset(flat + t->shard_off + have, 0, sizeof(uint16_t) * (size_t)(t->n_shard - have));
        SRLM_CHECK(srlm_comm_allgather(t->dp_comm, flat + t->shard_off, flat, (size_t)t->n_shard, SRLM_COMM_BF16));
        memcpy(t->m.params.data, flat, sizeof(uint16_t) * (size_t)t->m.n_params_local);
        return SRLM_OK;
    }
    /* device memory without device collectives (no NCCL; cpu_guarded): fp32 through the host */
    srlm_view full;
    SRLM_CHECK(gather_weights(t, &full));
    return be->ops->copy(be, &t->m.params, &full);
}

/* Every replica gets every updated shard of the weights. */
srlm_status zero1_allgather_params(trainer *t) {
    srlm_backend *be = t->be;
    if (t->dp == 1) return SRLM_OK; /* the weights themselves, or written by AdamW (adamw_writes_params) */
    if (t->master_v.data) return allgather_params_bf16(t);
    srlm_view full;
    SRLM_CHECK(gather_weights(t, &full));
    if (be->ops->host_memory) {
        memcpy(t->m.params.data, full.data, sizeof(float) * (size_t)t->m.n_params_local);
        return SRLM_OK;
    }
    return be->ops->copy(be, &t->m.params, &full);
}

/* This rank's optimizer shard from checkpoint folder `sd`. Written with the same
 * dp: its own file. With another dp: the moments are slices of one flat layout,
 * so the old shards of this tp rank are put back together and cut anew. */
srlm_status zero1_load_state(trainer *t, const char *sd) {
    srlm_train_state old;
    size_t old_n;
    SRLM_CHECK(srlm_train_state_peek(sd, 0, &old, &old_n));
    t->st.tp = t->m.tp_size; /* this run's layout, checked against the saved one */
    if (old.dp == t->dp)
        return srlm_train_state_load(sd, t->rank, t->kind_name, &t->st, t->adam_m, t->adam_v, (size_t)t->n_shard);
    const int64_t n = t->m.n_params_local;
    float *full = calloc(2 * (size_t)(old_n * (size_t)old.dp > (size_t)n ? old_n * (size_t)old.dp : (size_t)n),
                         sizeof(float));
    if (!full) return SRLM_ERR(SRLM_FAILED, "out of memory resharding the optimizer state");
    float *fm = full, *fv = full + old_n * (size_t)old.dp;
    srlm_status st = SRLM_OK;
    for (int d = 0; d < old.dp && st == SRLM_OK; d++) {
        int file_rank = d * t->m.tp_size + t->m.tp_rank; /* consecutive ranks form a tp group */
        srlm_train_state s = {.tp = t->m.tp_size};
        st = srlm_train_state_load(sd, file_rank, t->kind_name, &s, fm + (size_t)d * old_n, fv + (size_t)d * old_n,
                                   old_n);
        if (st == SRLM_OK && d == 0) t->st = s;
    }
    if (st == SRLM_OK && (int64_t)(old_n * (size_t)old.dp) < n)
        st = SRLM_ERR(SRLM_BAD_INPUT, "%s: %d optimizer shards of %zu cover fewer than the model's %lld parameters",
                      sd, old.dp, old_n, (long long)n);
    if (st == SRLM_OK) {
        const int64_t have = shard_have(t);
        memcpy(t->adam_m, fm + t->shard_off, sizeof(float) * (size_t)have);
        memcpy(t->adam_v, fv + t->shard_off, sizeof(float) * (size_t)have);
        SRLM_INFO("%s: optimizer state resharded from dp=%d to dp=%d", t->kind_name, old.dp, t->dp);
    }
    free(full);
    return st;
}
