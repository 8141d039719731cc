/* Packed sequences in one attention call (srlm_attn_shape's n_seg and
 * seg_off: training's layout, sequences one after another in one slot): the
 * forward (out, lse) and the backward (dq, dk, dv) of each sequence equal, bit
 * for bit, those of a call on that sequence alone in its own cache, so no row
 * sees another sequence's keys and none of its keys gets another's gradient;
 * padding rows after the packed ones get zeros, cache rows past them are never
 * read (NaN there) and their dk, dv are 0. The packed call uses slot 1 of a
 * two-slot cache (slot 0 NaN, never read). On F32 views (the CPU backend and
 * the guarded one) and BF16 views. Malformed packings are refused by both
 * ops with a message; a sequence outside the cache (slot or rows), and views
 * that disagree with the cache, by kv_store and both attention ops. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/factory.h"
#include "core/rng.h"
#include "test.h"

enum { NSEG = 5, P = 150, T = P + 3, MAX_SEQ = T + 2, NH = 4, NKV = 2, HD = 16 };
static const int seg_off[NSEG + 1] = {0, 1, 40, 41, 107, P}; /* a one-row sequence, uneven lengths */

typedef struct {
    srlm_view q, k, v, out, lse, dout, dq, dk, dv;
} bufs;

static void bufs_new(srlm_backend *be, bufs *b, srlm_dtype dt, int rows, int kvrows) {
    const srlm_backend_ops *op = be->ops;
    CHECK_OK(op->alloc(be, &b->q, dt, rows, NH * HD, "q"));
    CHECK_OK(op->alloc(be, &b->out, dt, rows, NH * HD, "out"));
    CHECK_OK(op->alloc(be, &b->dout, dt, rows, NH * HD, "dout"));
    CHECK_OK(op->alloc(be, &b->dq, dt, rows, NH * HD, "dq"));
    CHECK_OK(op->alloc(be, &b->lse, SRLM_F32, rows, NH, "lse"));
    CHECK_OK(op->alloc(be, &b->k, dt, kvrows, NKV * HD, "k"));
    CHECK_OK(op->alloc(be, &b->v, dt, kvrows, NKV * HD, "v"));
    CHECK_OK(op->alloc(be, &b->dk, dt, kvrows, NKV * HD, "dk"));
    CHECK_OK(op->alloc(be, &b->dv, dt, kvrows, NKV * HD, "dv"));
    srlm_view *out[] = {&b->out, &b->dq, &b->lse, &b->dk, &b->dv}; /* poisoned: every entry is written */
    for (int i = 0; i < 5; i++) CHECK_OK(op->fill(be, out[i], NAN));
}

static void bufs_free(srlm_backend *be, bufs *b) {
    srlm_view *v[] = {&b->q, &b->k, &b->v, &b->out, &b->lse, &b->dout, &b->dq, &b->dk, &b->dv};
    for (int i = 0; i < 9; i++) be->ops->free(be, v[i]);
}

static float *download(srlm_backend *be, const srlm_view *v) {
    float *h = malloc(sizeof(float) * (size_t)(v->rows * v->cols));
    CHECK_OK(be->ops->download(be, h, v));
    return h;
}

/* Rows [r0, r0 + n) of a and b (cols each) differ in this many values; NaN never matches. */
static int row_diffs(const float *a, int64_t ra, const float *b, int64_t rb, int n, int cols) {
    int bad = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < cols; j++) {
            const float x = a[(ra + i) * cols + j], y = b[(rb + i) * cols + j];
            bad += isnan(x) || isnan(y) || memcmp(&x, &y, sizeof x) != 0;
        }
    return bad;
}

static int zeros_missing(const float *a, int64_t r0, int n, int cols) {
    int bad = 0;
    for (int64_t i = (int64_t)r0 * cols; i < (int64_t)(r0 + n) * cols; i++) bad += a[i] != 0.0f;
    return bad;
}

static void run(srlm_backend_kind kind, srlm_dtype dt, const char *name) {
    srlm_backend *be = NULL;
    CHECK_OK(srlm_backend_new(kind, 2, 0, &be));
    if (!be) return;
    const srlm_backend_ops *op = be->ops;
    /* inputs: random rows; cache rows past the packed ones NaN (never read) */
    float *hq = malloc(sizeof(float) * T * NH * HD), *hdo = malloc(sizeof(float) * T * NH * HD);
    /* two slots: the packed call uses slot 1, slot 0 is NaN */
    float *hk = malloc(sizeof(float) * 2 * MAX_SEQ * NKV * HD), *hv = malloc(sizeof(float) * 2 * MAX_SEQ * NKV * HD);
    uint64_t c = 0;
    for (int i = 0; i < T * NH * HD; i++) hq[i] = (float)srlm_rng_normal(11, c++), hdo[i] = (float)srlm_rng_normal(11, c++);
    for (int i = 0; i < 2 * MAX_SEQ * NKV * HD; i++) {
        const int real = i >= MAX_SEQ * NKV * HD && i < (MAX_SEQ + P) * NKV * HD;
        hk[i] = real ? (float)srlm_rng_normal(12, c++) : NAN;
        hv[i] = real ? (float)srlm_rng_normal(12, c++) : NAN;
    }
    const float *k1 = hk + (size_t)MAX_SEQ * NKV * HD, *v1 = hv + (size_t)MAX_SEQ * NKV * HD; /* slot 1 */

    /* the packed call */
    bufs pk;
    bufs_new(be, &pk, dt, T, 2 * MAX_SEQ);
    CHECK_OK(op->upload(be, &pk.q, hq));
    CHECK_OK(op->upload(be, &pk.dout, hdo));
    CHECK_OK(op->upload(be, &pk.k, hk));
    CHECK_OK(op->upload(be, &pk.v, hv));
    int zero = 0, slot1 = 1, n_new = P;
    srlm_attn_shape s = {1, T, NH, NKV, HD, MAX_SEQ, &slot1, &zero, &n_new, NSEG, seg_off};
    CHECK_OK(op->attention(be, &pk.out, &pk.q, &pk.k, &pk.v, &s, &pk.lse));
    CHECK_OK(op->attention_backward(be, &pk.dq, &pk.dk, &pk.dv, &pk.dout, &pk.q, &pk.k, &pk.v, &s, &pk.out,
                                    &pk.lse));
    float *out = download(be, &pk.out), *lse = download(be, &pk.lse), *dq = download(be, &pk.dq);
    float *dk = download(be, &pk.dk), *dv = download(be, &pk.dv);

    /* each sequence alone: its rows of q and dout, its keys as a cache of its own */
    int bad_fwd = 0, bad_bwd = 0;
    for (int i = 0; i < NSEG; i++) {
        const int r0 = seg_off[i], len = seg_off[i + 1] - r0;
        bufs one;
        bufs_new(be, &one, dt, len, len);
        CHECK_OK(op->upload(be, &one.q, hq + (size_t)r0 * NH * HD));
        CHECK_OK(op->upload(be, &one.dout, hdo + (size_t)r0 * NH * HD));
        CHECK_OK(op->upload(be, &one.k, k1 + (size_t)r0 * NKV * HD));
        CHECK_OK(op->upload(be, &one.v, v1 + (size_t)r0 * NKV * HD));
        srlm_attn_shape s1 = {1, len, NH, NKV, HD, len, &zero, &zero, &len, 0, NULL};
        CHECK_OK(op->attention(be, &one.out, &one.q, &one.k, &one.v, &s1, &one.lse));
        CHECK_OK(op->attention_backward(be, &one.dq, &one.dk, &one.dv, &one.dout, &one.q, &one.k, &one.v, &s1,
                                        &one.out, &one.lse));
        float *o1 = download(be, &one.out), *l1 = download(be, &one.lse), *dq1 = download(be, &one.dq);
        float *dk1 = download(be, &one.dk), *dv1 = download(be, &one.dv);
        bad_fwd += row_diffs(out, r0, o1, 0, len, NH * HD) + row_diffs(lse, r0, l1, 0, len, NH);
        bad_bwd += row_diffs(dq, r0, dq1, 0, len, NH * HD) + row_diffs(dk, MAX_SEQ + r0, dk1, 0, len, NKV * HD) +
                   row_diffs(dv, MAX_SEQ + r0, dv1, 0, len, NKV * HD);
        free(o1), free(l1), free(dq1), free(dk1), free(dv1);
        bufs_free(be, &one);
    }
    const int bad_pad = zeros_missing(out, P, T - P, NH * HD) + zeros_missing(lse, P, T - P, NH) +
                        zeros_missing(dq, P, T - P, NH * HD) + zeros_missing(dk, MAX_SEQ + P, MAX_SEQ - P, NKV * HD) +
                        zeros_missing(dv, MAX_SEQ + P, MAX_SEQ - P, NKV * HD);
    printf("%s: %d packed sequences vs each alone: %d forward and %d backward values differ, %d padding values "
           "not 0\n", name, NSEG, bad_fwd, bad_bwd, bad_pad);
    CHECK_MSG(bad_fwd == 0 && bad_bwd == 0, "%s: packed sequences differ from each alone", name);
    CHECK_MSG(bad_pad == 0, "%s: padding rows or unused cache rows are not 0", name);

    /* malformed packings, refused by both ops */
    const int not_from_0[NSEG + 1] = {1, 2, 40, 41, 107, P}, short_end[NSEG + 1] = {0, 1, 40, 41, 107, P - 1};
    const int empty[NSEG + 1] = {0, 1, 40, 40, 107, P};
    struct { const char *what; srlm_attn_shape s; } bad[] = {
        {"not from row 0", {1, T, NH, NKV, HD, MAX_SEQ, &zero, &zero, &n_new, NSEG, not_from_0}},
        {"short of n_new", {1, T, NH, NKV, HD, MAX_SEQ, &zero, &zero, &n_new, NSEG, short_end}},
        {"an empty sequence", {1, T, NH, NKV, HD, MAX_SEQ, &zero, &zero, &n_new, NSEG, empty}},
        {"no seg_off", {1, T, NH, NKV, HD, MAX_SEQ, &zero, &zero, &n_new, NSEG, NULL}},
        {"n_past 1", {1, T, NH, NKV, HD, MAX_SEQ, &zero, (const int[]){1}, &n_new, NSEG, seg_off}},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_MSG(op->attention(be, &pk.out, &pk.q, &pk.k, &pk.v, &bad[i].s, NULL) == SRLM_BAD_INPUT,
                  "%s: attention accepted packed sequences with %s", name, bad[i].what);
        printf("%s: %s: %s\n", name, bad[i].what, srlm_last_error());
        CHECK_MSG(op->attention_backward(be, &pk.dq, &pk.dk, &pk.dv, &pk.dout, &pk.q, &pk.k, &pk.v, &bad[i].s,
                                         NULL, NULL) == SRLM_BAD_INPUT,
                  "%s: attention_backward accepted packed sequences with %s", name, bad[i].what);
    }

    /* sequences outside the cache (2 slots of MAX_SEQ rows), refused by the
     * three ops that index the cache by them, before touching it */
    const int two = 2, minus1 = -1, past = MAX_SEQ - P + 1;
    struct { const char *what; srlm_attn_shape s; } outside[] = {
        {"slot 2 of 2", {1, T, NH, NKV, HD, MAX_SEQ, &two, &zero, &n_new, 0, NULL}},
        {"slot -1", {1, T, NH, NKV, HD, MAX_SEQ, &minus1, &zero, &n_new, 0, NULL}},
        {"rows past the slot", {1, T, NH, NKV, HD, MAX_SEQ, &slot1, &past, &n_new, 0, NULL}},
    };
    srlm_view kv = srlm_view_rows(pk.dk, 0, T);
    for (size_t i = 0; i < sizeof outside / sizeof outside[0]; i++) {
        CHECK_MSG(op->kv_store(be, &pk.k, &kv, &outside[i].s) == SRLM_BAD_INPUT, "%s: kv_store accepted %s", name,
                  outside[i].what);
        printf("%s: %s: %s\n", name, outside[i].what, srlm_last_error());
        CHECK_MSG(op->attention(be, &pk.out, &pk.q, &pk.k, &pk.v, &outside[i].s, NULL) == SRLM_BAD_INPUT,
                  "%s: attention accepted %s", name, outside[i].what);
        CHECK_MSG(op->attention_backward(be, &pk.dq, &pk.dk, &pk.dv, &pk.dout, &pk.q, &pk.k, &pk.v, &outside[i].s,
                                         NULL, NULL) == SRLM_BAD_INPUT,
                  "%s: attention_backward accepted %s", name, outside[i].what);
    }

    /* caches that disagree: a v_cache (or dk) of one slot beside a two-slot k_cache,
     * kv rows short of B x T; refused on F32 views as on BF16 ones */
    srlm_view v_short = srlm_view_rows(pk.v, 0, MAX_SEQ), dk_short = srlm_view_rows(pk.dk, 0, MAX_SEQ);
    srlm_view kv_short = srlm_view_rows(pk.dk, 0, T - 1);
    CHECK_MSG(op->attention(be, &pk.out, &pk.q, &pk.k, &v_short, &s, NULL) == SRLM_BAD_INPUT,
              "%s: attention accepted a v_cache shorter than k_cache", name);
    printf("%s: v_cache of one slot: %s\n", name, srlm_last_error());
    CHECK_MSG(op->attention_backward(be, &pk.dq, &dk_short, &pk.dv, &pk.dout, &pk.q, &pk.k, &pk.v, &s, NULL,
                                     NULL) == SRLM_BAD_INPUT,
              "%s: attention_backward accepted a dk shorter than k_cache", name);
    CHECK_MSG(op->kv_store(be, &pk.k, &kv_short, &s) == SRLM_BAD_INPUT, "%s: kv_store accepted %lld kv rows for %d",
              name, (long long)kv_short.rows, T);

    bufs_free(be, &pk);
    srlm_backend_free(be);
    free(out), free(lse), free(dq), free(dk), free(dv), free(hq), free(hdo), free(hk), free(hv);
}

int main(void) {
    run(SRLM_BACKEND_CPU, SRLM_F32, "cpu f32");
    run(SRLM_BACKEND_CPU, SRLM_BF16, "cpu bf16");
    run(SRLM_BACKEND_CPU_GUARDED, SRLM_F32, "cpu_guarded f32");
    TEST_DONE();
}
