/* bench_model's per-op device time (op_profile.h). */
#include "op_profile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef SRLM_HAVE_CUDA
#include "backend/cuda/cuda_internal.h" /* the backend's stream */
#endif

enum { MAX_ROWS = 160, MAX_PAIRS = 1 << 15 };

typedef struct {
    char   key[64];
    double ms;
    long   calls;
} prof_row;

typedef struct {
    const srlm_backend_ops *inner; /* the backend's own table */
    srlm_backend_ops        ops;   /* the timing wrappers */
    prof_row                rows[MAX_ROWS];
    int                     n_rows;
    long                    untimed; /* calls past the event pool */
#ifdef SRLM_HAVE_CUDA
    int          cuda;               /* timed by events on the backend's stream */
    cudaEvent_t *ev;                 /* pairs: before and after timed call i */
    int         *ev_row;
    int          n_pairs, cap_pairs;
#endif
} profile;

static profile g;

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int row_for(const char *key) {
    for (int i = 0; i < g.n_rows; i++)
        if (!strcmp(g.rows[i].key, key)) return i;
    if (g.n_rows == MAX_ROWS) return MAX_ROWS - 1; /* the last row takes the rest */
    snprintf(g.rows[g.n_rows].key, sizeof g.rows[0].key, "%s", key);
    return g.n_rows++;
}

/* Before a call: its event pair recorded first (cuda), or the wall clock. */
static double begin(srlm_backend *be, int row, int *pair) {
    g.rows[row].calls++;
    *pair = -1;
#ifdef SRLM_HAVE_CUDA
    if (g.cuda) {
        if (g.n_pairs == g.cap_pairs && g.cap_pairs < MAX_PAIRS) {
            const int cap = g.cap_pairs ? 2 * g.cap_pairs : 1024;
            cudaEvent_t *ev = realloc(g.ev, sizeof *ev * 2 * (size_t)cap);
            if (ev) g.ev = ev;
            int *er = ev ? realloc(g.ev_row, sizeof *er * (size_t)cap) : NULL;
            if (er) {
                g.ev_row = er;
                int made = 2 * g.cap_pairs;
                while (made < 2 * cap && cudaEventCreate(&g.ev[made]) == cudaSuccess) made++;
                g.cap_pairs = made / 2;
            }
        }
        if (g.n_pairs < g.cap_pairs && cudaEventRecord(g.ev[2 * g.n_pairs], cuda_of(be)->stream) == cudaSuccess) {
            g.ev_row[g.n_pairs] = row;
            *pair = g.n_pairs++;
        } else {
            g.untimed++;
        }
        return 0;
    }
#else
    (void)be;
#endif
    return now_ms();
}

static void end(srlm_backend *be, int row, int pair, double t0) {
#ifdef SRLM_HAVE_CUDA
    if (g.cuda) {
        if (pair >= 0) cudaEventRecord(g.ev[2 * pair + 1], cuda_of(be)->stream);
        return;
    }
#else
    (void)be, (void)pair;
#endif
    g.rows[row].ms += now_ms() - t0;
}

/* One wrapper per compute op; `shape` (a view, or NULL) keys GEMMs by their
 * output's rows x cols. */
#define WRAP(name, params, args, shape)                                                                    \
    static srlm_status w_##name params {                                                                   \
        char key_[64];                                                                                     \
        const srlm_view *sv_ = (shape);                                                                    \
        if (sv_) snprintf(key_, sizeof key_, "%s %lldx%lld", #name, (long long)sv_->rows, (long long)sv_->cols); \
        else snprintf(key_, sizeof key_, "%s", #name);                                                     \
        const int row_ = row_for(key_);                                                                    \
        int pair_;                                                                                         \
        const double t0_ = begin(be, row_, &pair_);                                                        \
        srlm_status st_ = g.inner->name args;                                                              \
        end(be, row_, pair_, t0_);                                                                         \
        return st_;                                                                                        \
    }

WRAP(fill, (srlm_backend *be, srlm_view *v, float value), (be, v, value), NULL)
WRAP(matmul, (srlm_backend *be, srlm_view *y, const srlm_view *x, const srlm_view *w, int acc), (be, y, x, w, acc), y)
WRAP(embedding, (srlm_backend *be, srlm_view *out, const srlm_view *t, const int *ids, int n, int64_t vs),
     (be, out, t, ids, n, vs), NULL)
WRAP(rmsnorm, (srlm_backend *be, srlm_view *y, const srlm_view *x, const srlm_view *w, float eps), (be, y, x, w, eps),
     NULL)
WRAP(rope, (srlm_backend *be, srlm_view *x, const int *pos, int nh, int hd, float theta), (be, x, pos, nh, hd, theta),
     NULL)
WRAP(kv_store, (srlm_backend *be, srlm_view *c, const srlm_view *kv, const srlm_attn_shape *s), (be, c, kv, s), NULL)
WRAP(attention,
     (srlm_backend *be, srlm_view *out, const srlm_view *q, const srlm_view *k, const srlm_view *v,
      const srlm_attn_shape *s, srlm_view *lse),
     (be, out, q, k, v, s, lse), NULL)
WRAP(swiglu, (srlm_backend *be, srlm_view *out, const srlm_view *gate, const srlm_view *up), (be, out, gate, up), NULL)
WRAP(copy_rows, (srlm_backend *be, srlm_view *dst, const srlm_view *src, const int *rows, int n),
     (be, dst, src, rows, n), NULL)
WRAP(copy, (srlm_backend *be, srlm_view *dst, const srlm_view *src), (be, dst, src), NULL)
WRAP(add, (srlm_backend *be, srlm_view *y, const srlm_view *x), (be, y, x), NULL)
WRAP(add_rmsnorm,
     (srlm_backend *be, srlm_view *x, srlm_view *y, const srlm_view *r, const srlm_view *w, float eps),
     (be, x, y, r, w, eps), NULL)
WRAP(fill_cols, (srlm_backend *be, srlm_view *v, int64_t c0, float value), (be, v, c0, value), NULL)
WRAP(row_logsumexp_target,
     (srlm_backend *be, const srlm_view *l, const int *t, int64_t vs, float *mx, float *se, float *tl),
     (be, l, t, vs, mx, se, tl), NULL)
WRAP(row_argmax, (srlm_backend *be, const srlm_view *l, int *idx, float *val), (be, l, idx, val), NULL)
WRAP(dropout, (srlm_backend *be, srlm_view *x, float p, uint64_t key), (be, x, p, key), NULL)
WRAP(matmul_dx, (srlm_backend *be, srlm_view *dx, const srlm_view *dy, const srlm_view *w, int acc),
     (be, dx, dy, w, acc), dx)
WRAP(matmul_dw, (srlm_backend *be, srlm_view *dw, const srlm_view *dy, const srlm_view *x, int acc),
     (be, dw, dy, x, acc), dw)
WRAP(embedding_backward,
     (srlm_backend *be, srlm_view *dt, const srlm_view *dx, const int *ids, int n, int64_t vs),
     (be, dt, dx, ids, n, vs), NULL)
WRAP(rmsnorm_backward,
     (srlm_backend *be, srlm_view *dx, srlm_view *dw, const srlm_view *dy, const srlm_view *x, const srlm_view *w,
      float eps, int acc),
     (be, dx, dw, dy, x, w, eps, acc), NULL)
WRAP(rope_backward, (srlm_backend *be, srlm_view *dx, const int *pos, int nh, int hd, float theta),
     (be, dx, pos, nh, hd, theta), NULL)
WRAP(attention_backward,
     (srlm_backend *be, srlm_view *dq, srlm_view *dk, srlm_view *dv, const srlm_view *dout, const srlm_view *q,
      const srlm_view *k, const srlm_view *v, const srlm_attn_shape *s, const srlm_view *so, const srlm_view *sl),
     (be, dq, dk, dv, dout, q, k, v, s, so, sl), NULL)
WRAP(swiglu_backward,
     (srlm_backend *be, srlm_view *dg, srlm_view *du, const srlm_view *dout, const srlm_view *gate,
      const srlm_view *up),
     (be, dg, du, dout, gate, up), NULL)
WRAP(logprob_backward,
     (srlm_backend *be, srlm_view *l, const float *mx, const float *se, const int *t, int64_t vs, const float *d),
     (be, l, mx, se, t, vs, d), NULL)
WRAP(adamw,
     (srlm_backend *be, srlm_view *p, const srlm_view *gr, srlm_view *m, srlm_view *v, srlm_view *work,
      const srlm_adamw_consts *c),
     (be, p, gr, m, v, work, c), NULL)
WRAP(sum_squares, (srlm_backend *be, const srlm_view *xs, int n, double *out), (be, xs, n, out), NULL)
WRAP(scale, (srlm_backend *be, srlm_view *x, float s), (be, x, s), NULL)

void op_profile_on(srlm_backend *be) {
#ifdef SRLM_HAVE_CUDA
    cudaEvent_t *ev = g.ev;
    int *er = g.ev_row, cap = g.cap_pairs;
#endif
    const srlm_backend_ops *inner = g.inner && be->ops == &g.ops ? g.inner : be->ops;
    memset(&g, 0, sizeof g);
#ifdef SRLM_HAVE_CUDA
    g.ev = ev, g.ev_row = er, g.cap_pairs = cap; /* the event pool stays */
    g.cuda = !strcmp(inner->name, "cuda");
#endif
    g.inner = inner;
    g.ops = *inner;
#define SET(name) g.ops.name = w_##name
    SET(fill), SET(matmul), SET(embedding), SET(rmsnorm), SET(rope), SET(kv_store), SET(attention), SET(swiglu);
    SET(copy_rows), SET(copy), SET(add), SET(add_rmsnorm), SET(fill_cols), SET(row_logsumexp_target);
    SET(row_argmax), SET(dropout), SET(matmul_dx), SET(matmul_dw), SET(embedding_backward), SET(rmsnorm_backward);
    SET(rope_backward), SET(attention_backward), SET(swiglu_backward), SET(logprob_backward), SET(adamw);
    SET(sum_squares), SET(scale);
#undef SET
    be->ops = &g.ops;
}

static int by_time(const void *a, const void *b) {
    const double x = ((const prof_row *)a)->ms, y = ((const prof_row *)b)->ms;
    return x < y ? 1 : x > y ? -1 : 0;
}

void op_profile_report(srlm_backend *be, const char *what, int per) {
    if (be->ops != &g.ops) return;
#ifdef SRLM_HAVE_CUDA
    if (g.cuda && g.n_pairs > 0) {
        cudaEventSynchronize(g.ev[2 * g.n_pairs - 1]);
        for (int i = 0; i < g.n_pairs; i++) {
            float ms = 0;
            if (cudaEventElapsedTime(&ms, g.ev[2 * i], g.ev[2 * i + 1]) == cudaSuccess) g.rows[g.ev_row[i]].ms += ms;
        }
        cudaGetLastError();
    }
#endif
    be->ops = g.inner;
    if (per < 1) per = 1;
    qsort(g.rows, (size_t)g.n_rows, sizeof g.rows[0], by_time);
    double total = 0;
    long calls = 0;
    for (int i = 0; i < g.n_rows; i++) total += g.rows[i].ms, calls += g.rows[i].calls;
    printf("op_profile: %s, all ops, %.3f ms, %.1f calls%s\n", what, total / per, (double)calls / per,
           g.untimed ? " (some calls past the event pool untimed)" : "");
    for (int i = 0; i < g.n_rows; i++) {
        const prof_row *r = &g.rows[i];
        if (!r->calls) continue;
        printf("op_profile: %s, %s, %.3f ms (%.1f%%), %.1f calls, %.4f ms per call\n", what, r->key, r->ms / per,
               total > 0 ? 100.0 * r->ms / total : 0.0, (double)r->calls / per, r->ms / r->calls);
    }
}
