/* The guarded CPU backend's recorded steps: a tape of op calls
 * (guarded_steps.h). The host arrays are kept as pointers, never copied, so a
 * replay reads what the caller wrote into the area since, as a CUDA graph
 * reads its pinned inputs at launch; a tape that copied them would pass
 * tests that the GPU then fails. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/guarded_steps.h"
#include "backend/stage_ring.h"

static const char *const OP_NAMES[] = {
    [STEP_EMBEDDING] = "embedding", [STEP_RMSNORM] = "rmsnorm", [STEP_MATMUL] = "matmul",
    [STEP_ROPE] = "rope",           [STEP_KV_STORE] = "kv_store", [STEP_ATTENTION] = "attention",
    [STEP_ADD] = "add",             [STEP_ADD_RMSNORM] = "add_rmsnorm", [STEP_SWIGLU] = "swiglu",   [STEP_COPY_ROWS] = "copy_rows",
    [STEP_COPY] = "copy",           [STEP_FILL_COLS] = "fill_cols",
};

/* Mark the recording failed with the message just set (the first reason wins)
 * and pass the status on. */
static srlm_status fail_recording(guarded_steps *s, srlm_status st) {
    if (!s->failed) {
        s->failed = 1;
        snprintf(s->why, sizeof s->why, "%s", srlm_last_error());
    }
    return st;
}

static void tape_clear(guarded_tape *t) {
    free(t->recs);
    *t = (guarded_tape){0, NULL, 0, 0};
}

/* count ints at p lie inside the live extent of the area, at a multiple of
 * SRLM_STAGE_ALIGN bytes from its start as the CUDA backend requires (its
 * kernels may read the device copy with vector loads); an empty array is read
 * nowhere, so it may point anywhere */
static int in_area(const guarded_steps *s, const int *p, int64_t count) {
    if (count <= 0) return 1;
    if (!s->area || !p) return 0;
    const uintptr_t a = (uintptr_t)s->area, q = (uintptr_t)p;
    const uint64_t bytes = (uint64_t)count * sizeof(int);
    return q >= a && q - a <= s->area_bytes && bytes <= s->area_bytes - (q - a) && (q - a) % SRLM_STAGE_ALIGN == 0;
}

static srlm_status want_in_area(guarded_steps *s, const char *op, const char *what, const int *p, int64_t count) {
    if (in_area(s, p, count)) return SRLM_OK;
    return fail_recording(s, SRLM_ERR(SRLM_FAILED, "cpu_guarded backend: recording a step: %s's %s lie outside the "
                                      "step's inputs, or off their 256-byte alignment (%lld ints)", op, what, (long long)count));
}

static srlm_status want_shape_in_area(guarded_steps *s, const char *op, const srlm_attn_shape *shape) {
    if (shape->n_seg != 0 || shape->seg_off)
        return fail_recording(s, SRLM_ERR(SRLM_FAILED, "cpu_guarded backend: recording a step: %s's packed "
                                          "sequences (n_seg %d) cannot be recorded", op, shape->n_seg));
    SRLM_CHECK(want_in_area(s, op, "slots", shape->slot, shape->B));
    SRLM_CHECK(want_in_area(s, op, "n_past", shape->n_past, shape->B));
    return want_in_area(s, op, "n_new", shape->n_new, shape->B);
}

static srlm_status push(guarded_steps *s, const guarded_step_rec *r) {
    guarded_tape *t = &s->cur;
    if (t->n == t->cap) {
        const int cap = t->cap ? 2 * t->cap : 64;
        guarded_step_rec *grown = realloc(t->recs, sizeof *grown * (size_t)cap);
        if (!grown)
            return fail_recording(s, SRLM_ERR(SRLM_FAILED, "cpu_guarded backend: recording a step: out of memory "
                                              "for %d ops", cap));
        t->recs = grown;
        t->cap = cap;
    }
    t->recs[t->n++] = *r;
    return SRLM_OK;
}

/* ---- the step ops' bookkeeping ---- */

void *guarded_steps_inputs(guarded_steps *s, size_t bytes) {
    if (!s->area || bytes > s->area_cap) {
        const size_t cap = bytes > 64 ? bytes : 64;
        /* a fresh block, never grown in place: the area always moves, so a
         * recording kept across the move would be caught reading freed memory */
        char *grown = malloc(cap);
        if (!grown) {
            SRLM_ERR(SRLM_FAILED, "cpu_guarded backend: out of memory for %zu bytes of step inputs", bytes);
            return NULL;
        }
        if (s->area) memcpy(grown, s->area, s->area_cap);
        free(s->area);
        s->area = grown;
        s->area_cap = cap;
        guarded_steps_drop(s, "the step's inputs moved");
    }
    s->area_bytes = bytes;
    return s->area;
}

srlm_status guarded_steps_begin(guarded_steps *s, uint64_t key) {
    if (s->recording)
        return SRLM_ERR(SRLM_FAILED, "cpu_guarded backend: step_begin of step %#llx while step %#llx is recording",
                        (unsigned long long)key, (unsigned long long)s->cur.key);
    s->cur.key = key;
    s->cur.n = 0;
    s->failed = 0;
    s->why[0] = '\0';
    s->recording = 1;
    return SRLM_OK;
}

static void drop_kept(guarded_steps *s, int i) {
    tape_clear(&s->kept[i]);
    memmove(&s->kept[i], &s->kept[i + 1], sizeof s->kept[0] * (size_t)(s->n_kept - i - 1));
    s->n_kept--;
}

srlm_status guarded_steps_end(guarded_steps *s, int keep) {
    if (!s->recording) return SRLM_ERR(SRLM_FAILED, "cpu_guarded backend: step_end without step_begin");
    s->recording = 0;
    const uint64_t key = s->cur.key;
    if (!keep) {
        s->cur.n = 0;
        return SRLM_OK;
    }
    if (s->failed) {
        s->cur.n = 0;
        return SRLM_ERR(SRLM_FAILED, "cpu_guarded backend: step %#llx could not be kept: %s",
                        (unsigned long long)key, s->why);
    }
    for (int i = 0; i < s->n_kept; i++)
        if (s->kept[i].key == key) {
            drop_kept(s, i);
            break;
        }
    if (s->n_kept == GUARDED_STEP_KEYS) drop_kept(s, 0);
    s->kept[s->n_kept++] = s->cur; /* the tape's ops move over */
    s->cur = (guarded_tape){0, NULL, 0, 0};
    return SRLM_OK;
}

srlm_status guarded_steps_find(guarded_steps *s, uint64_t key, const guarded_tape **tape) {
    *tape = NULL;
    if (s->recording)
        return SRLM_ERR(SRLM_FAILED, "cpu_guarded backend: step_replay of step %#llx while step %#llx is recording",
                        (unsigned long long)key, (unsigned long long)s->cur.key);
    for (int i = 0; i < s->n_kept; i++)
        if (s->kept[i].key == key) *tape = &s->kept[i];
    return SRLM_OK;
}

srlm_status guarded_steps_run(const guarded_tape *t, srlm_backend *be, const srlm_backend_ops *ops) {
    for (int i = 0; i < t->n; i++) {
        guarded_step_rec r = t->recs[i]; /* the ops get views they may not keep: the tape stays as recorded */
        srlm_status st = SRLM_OK;
        switch (r.op) {
        case STEP_EMBEDDING: st = ops->embedding(be, &r.v[0], &r.v[1], r.arr, r.n, r.start); break;
        case STEP_RMSNORM: st = ops->rmsnorm(be, &r.v[0], &r.v[1], &r.v[2], r.scalar); break;
        case STEP_MATMUL: st = ops->matmul(be, &r.v[0], &r.v[1], &r.v[2], r.accumulate); break;
        case STEP_ROPE: st = ops->rope(be, &r.v[0], r.arr, r.n, r.head_dim, r.scalar); break;
        case STEP_KV_STORE: st = ops->kv_store(be, &r.v[0], &r.v[1], &r.shape); break;
        case STEP_ATTENTION:
            st = ops->attention(be, &r.v[0], &r.v[1], &r.v[2], &r.v[3], &r.shape, r.has_lse ? &r.lse : NULL);
            break;
        case STEP_ADD: st = ops->add(be, &r.v[0], &r.v[1]); break;
        case STEP_ADD_RMSNORM: st = ops->add_rmsnorm(be, &r.v[0], &r.v[1], &r.v[2], &r.v[3], r.scalar); break;
        case STEP_SWIGLU: st = ops->swiglu(be, &r.v[0], &r.v[1], &r.v[2]); break;
        case STEP_COPY_ROWS: st = ops->copy_rows(be, &r.v[0], &r.v[1], r.arr, r.n); break;
        case STEP_COPY: st = ops->copy(be, &r.v[0], &r.v[1]); break;
        case STEP_FILL_COLS: st = ops->fill_cols(be, &r.v[0], r.start, r.scalar); break;
        }
        if (st != SRLM_OK) {
            srlm_error_context("cpu_guarded backend: replaying step %#llx, op %d of %d (%s)",
                               (unsigned long long)t->key, i + 1, t->n, OP_NAMES[r.op]);
            return st;
        }
    }
    return SRLM_OK;
}

void guarded_steps_drop(guarded_steps *s, const char *why) {
    while (s->n_kept) drop_kept(s, s->n_kept - 1);
    /* a recording in progress may hold the memory that went: it cannot be
     * kept either (free returns nothing, so step_end says it) */
    if (s->recording && !s->failed) {
        s->failed = 1;
        snprintf(s->why, sizeof s->why, "cpu_guarded backend: recording a step: %s", why);
    }
}

void guarded_steps_free(guarded_steps *s) {
    while (s->n_kept) drop_kept(s, s->n_kept - 1);
    tape_clear(&s->cur);
    free(s->area);
    *s = (guarded_steps){0};
}

srlm_status guarded_steps_refuse(guarded_steps *s, const char *op) {
    return fail_recording(s, SRLM_ERR(SRLM_FAILED, "cpu_guarded backend: %s cannot be recorded in a step", op));
}

/* ---- recording the ops ---- */

srlm_status guarded_record_embedding(guarded_steps *s, srlm_view *out, const srlm_view *table, const int *ids,
                                     int n, int64_t vocab_start) {
    SRLM_CHECK(want_in_area(s, "embedding", "ids", ids, n));
    return push(s, &(guarded_step_rec){.op = STEP_EMBEDDING, .v = {*out, *table}, .arr = ids, .n = n,
                                       .start = vocab_start});
}

srlm_status guarded_record_rmsnorm(guarded_steps *s, srlm_view *y, const srlm_view *x, const srlm_view *w,
                                   float eps) {
    return push(s, &(guarded_step_rec){.op = STEP_RMSNORM, .v = {*y, *x, *w}, .scalar = eps});
}

srlm_status guarded_record_matmul(guarded_steps *s, srlm_view *y, const srlm_view *x, const srlm_view *w,
                                  int accumulate) {
    return push(s, &(guarded_step_rec){.op = STEP_MATMUL, .v = {*y, *x, *w}, .accumulate = accumulate});
}

srlm_status guarded_record_rope(guarded_steps *s, srlm_view *x, const int *pos, int n_heads, int head_dim,
                                float theta) {
    SRLM_CHECK(want_in_area(s, "rope", "positions", pos, x->rows));
    return push(s, &(guarded_step_rec){.op = STEP_ROPE, .v = {*x}, .arr = pos, .n = n_heads,
                                       .head_dim = head_dim, .scalar = theta});
}

srlm_status guarded_record_kv_store(guarded_steps *s, srlm_view *cache, const srlm_view *kv,
                                    const srlm_attn_shape *shape) {
    SRLM_CHECK(want_shape_in_area(s, "kv_store", shape));
    return push(s, &(guarded_step_rec){.op = STEP_KV_STORE, .v = {*cache, *kv}, .shape = *shape});
}

srlm_status guarded_record_attention(guarded_steps *s, srlm_view *out, const srlm_view *q, const srlm_view *k_cache,
                                     const srlm_view *v_cache, const srlm_attn_shape *shape, srlm_view *lse) {
    SRLM_CHECK(want_shape_in_area(s, "attention", shape));
    guarded_step_rec r = {.op = STEP_ATTENTION, .v = {*out, *q, *k_cache, *v_cache}, .shape = *shape};
    if (lse) {
        r.lse = *lse;
        r.has_lse = 1;
    }
    return push(s, &r);
}

srlm_status guarded_record_swiglu(guarded_steps *s, srlm_view *out, const srlm_view *gate, const srlm_view *up) {
    return push(s, &(guarded_step_rec){.op = STEP_SWIGLU, .v = {*out, *gate, *up}});
}

srlm_status guarded_record_copy_rows(guarded_steps *s, srlm_view *dst, const srlm_view *src, const int *src_rows,
                                     int n) {
    SRLM_CHECK(want_in_area(s, "copy_rows", "rows", src_rows, n));
    return push(s, &(guarded_step_rec){.op = STEP_COPY_ROWS, .v = {*dst, *src}, .arr = src_rows, .n = n});
}

srlm_status guarded_record_copy(guarded_steps *s, srlm_view *dst, const srlm_view *src) {
    return push(s, &(guarded_step_rec){.op = STEP_COPY, .v = {*dst, *src}});
}

srlm_status guarded_record_add(guarded_steps *s, srlm_view *y, const srlm_view *x) {
    return push(s, &(guarded_step_rec){.op = STEP_ADD, .v = {*y, *x}});
}

srlm_status guarded_record_add_rmsnorm(guarded_steps *s, srlm_view *x, srlm_view *y, const srlm_view *r,
                                       const srlm_view *w, float eps) {
    return push(s, &(guarded_step_rec){.op = STEP_ADD_RMSNORM, .v = {*x, *y, *r, *w}, .scalar = eps});
}

srlm_status guarded_record_fill_cols(guarded_steps *s, srlm_view *v, int64_t c0, float value) {
    return push(s, &(guarded_step_rec){.op = STEP_FILL_COLS, .v = {*v}, .start = c0, .scalar = value});
}
