/* The guarded CPU backend's recorded steps (backend.h's step ops) as a tape of
 * op calls: while recording, the forward ops a decode step uses are stored
 * (their views and scalars copied, their host arrays kept as pointers into
 * the step's input area) instead of run, and a replay runs them in order
 * through the CPU ops, reading the arrays' current contents. As strict as the
 * CUDA backend's graphs, so that tests catch on a CPU what would go wrong on
 * a GPU: an array outside the area, or an op that cannot be part of a graph,
 * fails the recording; freeing memory or moving the area drops recordings. */
#ifndef SRLM_GUARDED_STEPS_H
#define SRLM_GUARDED_STEPS_H

#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"

enum { GUARDED_STEP_KEYS = 8 }; /* recordings kept at once; the oldest goes first */

typedef enum {
    STEP_EMBEDDING,
    STEP_RMSNORM,
    STEP_MATMUL,
    STEP_ROPE,
    STEP_KV_STORE,
    STEP_ATTENTION,
    STEP_ADD,
    STEP_ADD_RMSNORM,
    STEP_SWIGLU,
    STEP_COPY_ROWS,
    STEP_COPY,
    STEP_FILL_COLS,
} guarded_step_op;

/* One recorded op call: the views (out first, then the inputs in the op's
 * order) and scalars it was called with; which fields it uses depends on op. */
typedef struct {
    guarded_step_op op;
    srlm_view       v[4];
    srlm_view       lse; /* attention's, when has_lse */
    int             has_lse;
    const int      *arr;       /* embedding's ids, rope's positions, copy_rows' rows: in the area */
    int             n;         /* ids or rows; rope's heads */
    int             head_dim;  /* rope */
    int             accumulate; /* matmul */
    int64_t         start;     /* embedding's vocab_start, fill_cols' c0 */
    float           scalar;    /* rmsnorm's eps, rope's theta, fill_cols' value */
    srlm_attn_shape shape;     /* kv_store, attention: slot, n_past, n_new in the area */
} guarded_step_rec;

typedef struct {
    uint64_t          key;
    guarded_step_rec *recs;
    int               n, cap;
} guarded_tape;

typedef struct {
    char        *area;            /* step_inputs' host area (plain malloc) */
    size_t       area_bytes, area_cap; /* the last request (the live extent) and the capacity */
    int          recording;
    int          failed;           /* the recording cannot be kept: why says why */
    char         why[512];
    guarded_tape cur;              /* the recording in progress */
    guarded_tape kept[GUARDED_STEP_KEYS]; /* oldest first */
    int          n_kept;
} guarded_steps;

/* the step ops' bookkeeping (backend.h) */
void       *guarded_steps_inputs(guarded_steps *s, size_t bytes);
srlm_status guarded_steps_begin(guarded_steps *s, uint64_t key);
srlm_status guarded_steps_end(guarded_steps *s, int keep);
/* The kept recording of key, NULL when none; an error while recording. */
srlm_status guarded_steps_find(guarded_steps *s, uint64_t key, const guarded_tape **tape);
/* Run a tape's ops through the CPU ops `ops` on be (the caller opens the pages). */
srlm_status guarded_steps_run(const guarded_tape *t, srlm_backend *be, const srlm_backend_ops *ops);

/* Memory changed under the recordings (a view freed): drop every kept one, and
 * fail the one in progress. */
void guarded_steps_drop(guarded_steps *s, const char *why);
void guarded_steps_free(guarded_steps *s);
/* An op that cannot be part of a step, called while recording: fails it. */
srlm_status guarded_steps_refuse(guarded_steps *s, const char *op);

/* Recording the recordable ops: the ops' arguments after `be`. */
srlm_status guarded_record_embedding(guarded_steps *s, srlm_view *out, const srlm_view *table, const int *ids,
                                     int n, int64_t vocab_start);
srlm_status guarded_record_rmsnorm(guarded_steps *s, srlm_view *y, const srlm_view *x, const srlm_view *w,
                                   float eps);
srlm_status guarded_record_matmul(guarded_steps *s, srlm_view *y, const srlm_view *x, const srlm_view *w,
                                  int accumulate);
srlm_status guarded_record_rope(guarded_steps *s, srlm_view *x, const int *pos, int n_heads, int head_dim,
                                float theta);
srlm_status guarded_record_kv_store(guarded_steps *s, srlm_view *cache, const srlm_view *kv,
                                    const srlm_attn_shape *shape);
srlm_status guarded_record_attention(guarded_steps *s, srlm_view *out, const srlm_view *q, const srlm_view *k_cache,
                                     const srlm_view *v_cache, const srlm_attn_shape *shape, srlm_view *lse);
srlm_status guarded_record_swiglu(guarded_steps *s, srlm_view *out, const srlm_view *gate, const srlm_view *up);
srlm_status guarded_record_copy_rows(guarded_steps *s, srlm_view *dst, const srlm_view *src, const int *src_rows,
                                     int n);
srlm_status guarded_record_copy(guarded_steps *s, srlm_view *dst, const srlm_view *src);
srlm_status guarded_record_add(guarded_steps *s, srlm_view *y, const srlm_view *x);
srlm_status guarded_record_add_rmsnorm(guarded_steps *s, srlm_view *x, srlm_view *y, const srlm_view *r,
                                       const srlm_view *w, float eps);
srlm_status guarded_record_fill_cols(guarded_steps *s, srlm_view *v, int64_t c0, float value);

#endif
