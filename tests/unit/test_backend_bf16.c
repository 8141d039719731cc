/* The CPU backend on BF16 views (the CPU twin of a bf16 model): every op on
 * BF16 views must give, bit for bit, what the fp32 op gives on fp32 views
 * holding the same (bf16-representable) values, with each BF16 output rounded
 * once to nearest even; F32 outputs of mixed calls (matmul_dw into an fp32
 * dw, attention's lse, the host results of the logits ops) are the fp32 op's
 * bits exactly. Views have stride > cols (the padding holds a sentinel that
 * must survive) and outputs start as NaN. matmul, rmsnorm, swiglu and
 * attention are also checked against double-precision loops here, so the
 * backend is not only compared with itself. Then: F32 -> BF16 rounding of
 * hand-picked halfway values, refused dtype combinations (the message names
 * the op), and all of it again on the guarded backend, whose results must
 * equal the plain one's. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "core/dtype.h"
#include "core/rng.h"
#include "test.h"

static srlm_backend *be;
static const srlm_backend_ops *op;
static const char *be_name;

enum { PAD = 3 };
static const float SENTINEL = 1536.0f; /* exact in bf16 */

static float bf(float x) { return srlm_bf16_to_f32(srlm_f32_to_bf16(x)); }
static uint32_t bits(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}

/* never zero: +-[0.25, 2), rounded to bf16 */
static float rnd(uint64_t key, uint64_t i) {
    float u = srlm_rng_uniform(key, 2 * i), sign = srlm_rng_uniform(key, 2 * i + 1) < 0.5f ? -1.0f : 1.0f;
    return bf(sign * (0.25f + 1.75f * u));
}

/* ---- test views: rows x cols inside a rows x (cols + pad) allocation ---- */

typedef struct {
    srlm_view whole, v;
    int       pad;
} tview;

static tview tv_new(srlm_dtype dt, int64_t rows, int64_t cols, int pad) {
    tview t = {{0}, {0}, pad};
    CHECK_OK(op->alloc(be, &t.whole, dt, rows, cols + pad, "test view"));
    CHECK_OK(op->fill(be, &t.whole, SENTINEL));
    t.v = t.whole;
    t.v.cols = cols;
    return t;
}

static float *tv_get(const tview *t) {
    float *h = malloc(sizeof(float) * (size_t)(t->v.rows * t->v.cols + 1));
    CHECK_OK(op->download(be, h, &t->v));
    return h;
}

/* the padding columns still hold the sentinel */
static int tv_pad_ok(const tview *t) {
    float *h = malloc(sizeof(float) * (size_t)(t->whole.rows * t->whole.cols + 1));
    CHECK_OK(op->download(be, h, &t->whole));
    int ok = 1;
    for (int64_t i = 0; i < t->whole.rows; i++)
        for (int64_t j = t->v.cols; j < t->whole.cols; j++) ok &= h[i * t->whole.cols + j] == SENTINEL;
    free(h);
    return ok;
}

static void tv_free(tview *t) { op->free(be, &t->whole); }

/* A view under test (b: BF16, or F32 in mixed calls) and its fp32 twin f with
 * the same values: random for key != 0, NaN (poison) for key 0. */
typedef struct {
    tview   b, f;
    int64_t rows, cols;
} pair;

static void pair_set(pair *p, const float *h) {
    CHECK_OK(op->upload(be, &p->b.v, h));
    CHECK_OK(op->upload(be, &p->f.v, h));
}

static pair pair_new(srlm_dtype bdt, int64_t rows, int64_t cols, uint64_t key) {
    pair p = {tv_new(bdt, rows, cols, PAD), tv_new(SRLM_F32, rows, cols, PAD), rows, cols};
    float *h = malloc(sizeof(float) * (size_t)(rows * cols + 1));
    for (int64_t i = 0; i < rows * cols; i++) h[i] = key ? rnd(key, (uint64_t)i) : NAN;
    pair_set(&p, h);
    free(h);
    return p;
}

static pair pair_bf(int64_t rows, int64_t cols, uint64_t key) { return pair_new(SRLM_BF16, rows, cols, key); }

/* b equals f rounded to b's dtype, bit for bit (NaN nowhere unless allow_nan,
 * for outputs of which the op writes only part), and the padding is intact.
 * Then f gets b's values, for ops that read them next. */
static void pair_check(const char *what, pair *p, int allow_nan) {
    float *gb = tv_get(&p->b), *gf = tv_get(&p->f);
    const int b16 = p->b.v.dtype == SRLM_BF16;
    int64_t bad = 0, first = -1;
    for (int64_t i = 0; i < p->rows * p->cols; i++) {
        uint32_t want = b16 ? srlm_f32_to_bf16(gf[i]) : bits(gf[i]);
        uint32_t got = b16 ? srlm_f32_to_bf16(gb[i]) : bits(gb[i]);
        if (want != got || (!allow_nan && isnan(gb[i]))) {
            if (first < 0) first = i;
            bad++;
        }
    }
    CHECK_MSG(bad == 0, "%s: %s: %lld of %lld elements differ from the fp32 op's, first (%lld,%lld): %.9g vs %.9g",
              be_name, what, (long long)bad, (long long)(p->rows * p->cols), (long long)(first / p->cols),
              (long long)(first % p->cols), first >= 0 ? gb[first] : 0.0, first >= 0 ? gf[first] : 0.0);
    CHECK_MSG(tv_pad_ok(&p->b) && tv_pad_ok(&p->f), "%s: %s: the stride padding was written", be_name, what);
    CHECK_OK(op->upload(be, &p->f.v, gb)); /* the next op on the twins starts from b's values */
    free(gb);
    free(gf);
}

static void pair_free(pair *p) {
    tv_free(&p->b);
    tv_free(&p->f);
}

static void same_floats(const char *what, const float *a, const float *b, int64_t n) {
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) bad += bits(a[i]) != bits(b[i]);
    CHECK_MSG(bad == 0, "%s: %s: %lld of %lld host results differ", be_name, what, (long long)bad, (long long)n);
}

/* got (bf16 outputs) against a double-precision result: relative 2^-8 per
 * element (the output's rounding, with room) plus `abs_tol` */
static void near_double(const char *what, const float *got, const double *want, int64_t n, double abs_tol) {
    double worst = 0;
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs(got[i] - want[i]), tol = ldexp(fabs(want[i]), -8) + abs_tol;
        if (!(e <= tol)) bad++;
        if (e > worst || isnan(e)) worst = isnan(e) ? INFINITY : e;
    }
    printf("%s: %s: max abs error %.3g against double\n", be_name, what, worst);
    CHECK_MSG(bad == 0, "%s: %s: %lld of %lld elements outside 2^-8 relative + %g of double", be_name, what,
              (long long)bad, (long long)n, abs_tol);
}

/* ---- the ops ---- */

static void test_upload_fill_copy(void) {
    const int64_t R = 5, C = 77;
    float *h = malloc(sizeof(float) * R * C);
    for (int64_t i = 0; i < R * C; i++) h[i] = (float)srlm_rng_normal(3, (uint64_t)i); /* not bf16-exact */
    tview t = tv_new(SRLM_BF16, R, C, PAD);
    CHECK_OK(op->upload(be, &t.v, h));
    float *g = tv_get(&t);
    int bad = 0;
    for (int64_t i = 0; i < R * C; i++) bad += bits(g[i]) != bits(bf(h[i]));
    CHECK_MSG(bad == 0 && tv_pad_ok(&t), "%s: upload/download of BF16: %d values not rounded to nearest even",
              be_name, bad);
    free(g);

    /* F32 -> BF16 copy rounds like upload; BF16 -> F32 widens exactly; BF16 -> BF16 copies */
    pair src = pair_new(SRLM_F32, R, C, 0), dst = pair_bf(R, C, 0), back = pair_new(SRLM_F32, R, C, 0);
    pair_set(&src, h);
    CHECK_OK(op->copy(be, &dst.b.v, &src.b.v));
    CHECK_OK(op->copy(be, &dst.f.v, &src.f.v));
    pair_check("copy F32 -> BF16", &dst, 0);
    g = tv_get(&dst.b);
    bad = 0;
    for (int64_t i = 0; i < R * C; i++) bad += bits(g[i]) != bits(bf(h[i]));
    CHECK_MSG(bad == 0, "%s: copy F32 -> BF16: %d values not rounded to nearest even", be_name, bad);
    free(g);
    CHECK_OK(op->copy(be, &back.b.v, &dst.b.v));
    CHECK_OK(op->copy(be, &back.f.v, &dst.f.v));
    pair_check("copy BF16 -> F32", &back, 0);
    pair b2 = pair_bf(R, C, 0), a2 = pair_bf(R, C, 11);
    CHECK_OK(op->copy(be, &b2.b.v, &a2.b.v));
    CHECK_OK(op->copy(be, &b2.f.v, &a2.f.v));
    pair_check("copy BF16 -> BF16", &b2, 0);

    CHECK_OK(op->fill(be, &b2.b.v, 0.1f));
    CHECK_OK(op->fill(be, &b2.f.v, 0.1f));
    pair_check("fill", &b2, 0);
    CHECK_OK(op->fill_cols(be, &a2.b.v, 40, -INFINITY));
    CHECK_OK(op->fill_cols(be, &a2.f.v, 40, -INFINITY));
    pair_check("fill_cols", &a2, 0);
    pair_free(&src), pair_free(&dst), pair_free(&back), pair_free(&b2), pair_free(&a2);
    tv_free(&t);
    free(h);
}

/* Round to nearest even at bf16's 8 significant bits (ulp 2^-7 in [1, 2)). */
static void test_rounding(void) {
    const float in[] = {1.0f + 0x1p-8f,            /* halfway, 1 is even */
                        1.0f + 3 * 0x1p-8f,        /* halfway between 1 + 2^-7 (odd) and 1 + 2^-6 */
                        1.0f + 5 * 0x1p-8f,        /* halfway between 1 + 2^-6 (even) and 1 + 3 * 2^-7 */
                        1.0f + 7 * 0x1p-8f,        /* halfway between 1 + 3 * 2^-7 (odd) and 1 + 2^-5 */
                        1.0f + 0x1p-8f + 0x1p-20f, /* just above halfway: up */
                        -(1.0f + 0x1p-8f),         /* the sign plays no part */
                        3 * 0x1p-134f,             /* subnormal halfway between 2^-133 (odd) and 2^-132 */
                        FLT_MAX};                  /* past bf16's largest finite value: inf */
    const float want[] = {1.0f, 1.0f + 0x1p-6f, 1.0f + 0x1p-6f, 1.0f + 0x1p-5f, 1.0f + 0x1p-7f, -1.0f,
                          0x1p-132f, INFINITY};
    enum { N = sizeof in / sizeof in[0] };
    tview f = tv_new(SRLM_F32, 1, N, PAD), b = tv_new(SRLM_BF16, 1, N, PAD);
    CHECK_OK(op->upload(be, &f.v, in));
    CHECK_OK(op->copy(be, &b.v, &f.v));
    float *g = tv_get(&b);
    for (int i = 0; i < N; i++)
        CHECK_MSG(bits(g[i]) == bits(want[i]), "%s: copy F32 -> BF16 of %a gave %a, expected %a", be_name,
                  (double)in[i], (double)g[i], (double)want[i]);
    free(g);
    tv_free(&f), tv_free(&b);
}

static void test_gather(void) {
    enum { V = 20, D = 13, N = 7, B = 2, T = 3, NKV = 1, HD = 13, MAX_SEQ = 8, SLOTS = 3 };
    pair table = pair_bf(V, D, 21), out = pair_bf(N + 1, D, 0);
    const int ids[N] = {15, 3, 40, 3, 9, 14, 10}; /* shard [5, 25): 3 is below, 40 above */
    CHECK_OK(op->embedding(be, &out.b.v, &table.b.v, ids, N, 5));
    CHECK_OK(op->embedding(be, &out.f.v, &table.f.v, ids, N, 5));
    pair_check("embedding", &out, 1); /* the last row is not written */

    const int src_rows[4] = {19, 0, 7, 7};
    pair rows = pair_bf(5, D, 0);
    CHECK_OK(op->copy_rows(be, &rows.b.v, &table.b.v, src_rows, 4));
    CHECK_OK(op->copy_rows(be, &rows.f.v, &table.f.v, src_rows, 4));
    pair_check("copy_rows", &rows, 1);

    int slot[B] = {2, 0}, n_past[B] = {1, 4}, n_new[B] = {3, 2};
    srlm_attn_shape s = {B, T, 1, NKV, HD, MAX_SEQ, slot, n_past, n_new, 0, NULL};
    pair kv = pair_bf(B * T, D, 22), cache = pair_bf(SLOTS * MAX_SEQ, D, 23);
    CHECK_OK(op->kv_store(be, &cache.b.v, &kv.b.v, &s));
    CHECK_OK(op->kv_store(be, &cache.f.v, &kv.f.v, &s));
    pair_check("kv_store", &cache, 0);

    pair y = pair_bf(N, D, 24), x = pair_bf(N, D, 25);
    CHECK_OK(op->add(be, &y.b.v, &x.b.v));
    CHECK_OK(op->add(be, &y.f.v, &x.f.v));
    pair_check("add", &y, 0);
    pair_free(&table), pair_free(&out), pair_free(&rows), pair_free(&kv), pair_free(&cache), pair_free(&y),
        pair_free(&x);
}

/* y = x W^T (+ y) against double */
static void matmul_double(const char *what, const pair *y, const float *y0, const pair *x, const pair *w) {
    float *gy = tv_get(&y->b), *gx = tv_get(&x->f), *gw = tv_get(&w->f);
    const int64_t N = x->rows, K = x->cols, M = w->rows;
    double *want = malloc(sizeof(double) * (size_t)(N * M)), mag = 0;
    for (int64_t i = 0; i < N; i++)
        for (int64_t j = 0; j < M; j++) {
            double acc = y0 ? y0[i * M + j] : 0, a = fabs(acc);
            for (int64_t k = 0; k < K; k++) {
                acc += (double)gx[i * K + k] * gw[j * K + k];
                a += fabs((double)gx[i * K + k] * gw[j * K + k]);
            }
            want[i * M + j] = acc;
            mag = a > mag ? a : mag;
        }
    near_double(what, gy, want, N * M, 1e-5 * mag);
    free(gy), free(gx), free(gw), free(want);
}

/* y = x W^T and y += x W^T with n rows: the CPU backend takes one sgemv per
 * row up to a few rows and sgemm above (backend_cpu.c), both against double. */
static void test_matmul_rows(int n) {
    enum { IN = 37, OUT = 19 };
    char what[64];
    pair x = pair_bf(n, IN, 31 + n), w = pair_bf(OUT, IN, 32), y = pair_bf(n, OUT, 0);
    CHECK_OK(op->matmul(be, &y.b.v, &x.b.v, &w.b.v, 0));
    CHECK_OK(op->matmul(be, &y.f.v, &x.f.v, &w.f.v, 0));
    snprintf(what, sizeof what, "matmul, %d rows", n);
    pair_check(what, &y, 0);
    matmul_double(what, &y, NULL, &x, &w);
    float *y0 = tv_get(&y.b);
    CHECK_OK(op->matmul(be, &y.b.v, &x.b.v, &w.b.v, 1));
    CHECK_OK(op->matmul(be, &y.f.v, &x.f.v, &w.f.v, 1));
    snprintf(what, sizeof what, "matmul accumulate, %d rows", n);
    pair_check(what, &y, 0);
    matmul_double(what, &y, y0, &x, &w);
    free(y0);
    pair_free(&x), pair_free(&w), pair_free(&y);
}

static void test_matmul(void) {
    enum { N = 9, IN = 37, OUT = 19 };
    const int rows[] = {1, 2, 3, 4, N};
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) test_matmul_rows(rows[i]);
    pair x = pair_bf(N, IN, 31), w = pair_bf(OUT, IN, 32);
    /* an F32 output of BF16 inputs: the fp32 op's bits */
    pair y32 = pair_new(SRLM_F32, N, OUT, 0);
    CHECK_OK(op->matmul(be, &y32.b.v, &x.b.v, &w.b.v, 0));
    CHECK_OK(op->matmul(be, &y32.f.v, &x.f.v, &w.f.v, 0));
    pair_check("matmul into F32", &y32, 0);

    pair dy = pair_bf(N, OUT, 33), dx = pair_bf(N, IN, 34), dx32 = pair_new(SRLM_F32, N, IN, 0);
    for (int acc = 0; acc < 2; acc++) {
        CHECK_OK(op->matmul_dx(be, &dx.b.v, &dy.b.v, &w.b.v, acc));
        CHECK_OK(op->matmul_dx(be, &dx.f.v, &dy.f.v, &w.f.v, acc));
        pair_check(acc ? "matmul_dx accumulate" : "matmul_dx", &dx, 0);
    }
    CHECK_OK(op->matmul_dx(be, &dx32.b.v, &dy.b.v, &w.b.v, 0));
    CHECK_OK(op->matmul_dx(be, &dx32.f.v, &dy.f.v, &w.f.v, 0));
    pair_check("matmul_dx into F32", &dx32, 0);

    pair dw = pair_bf(OUT, IN, 35), dw32 = pair_new(SRLM_F32, OUT, IN, 36); /* dw +=: starts nonzero */
    for (int acc = 1; acc >= 0; acc--) { /* then written over what the first left */
        CHECK_OK(op->matmul_dw(be, &dw.b.v, &dy.b.v, &x.b.v, acc));
        CHECK_OK(op->matmul_dw(be, &dw.f.v, &dy.f.v, &x.f.v, acc));
        pair_check(acc ? "matmul_dw accumulate" : "matmul_dw", &dw, 0);
        CHECK_OK(op->matmul_dw(be, &dw32.b.v, &dy.b.v, &x.b.v, acc)); /* fp32 gradients of a bf16 model */
        CHECK_OK(op->matmul_dw(be, &dw32.f.v, &dy.f.v, &x.f.v, acc));
        pair_check(acc ? "matmul_dw accumulate into F32" : "matmul_dw into F32", &dw32, 0);
    }
    pair_free(&x), pair_free(&w), pair_free(&y32), pair_free(&dy), pair_free(&dx), pair_free(&dx32),
        pair_free(&dw), pair_free(&dw32);
}

static void test_rmsnorm(void) {
    enum { N = 6, D = 45 };
    const float eps = 1e-5f;
    pair x = pair_bf(N, D, 41), w = pair_bf(1, D, 42), y = pair_bf(N, D, 0);
    CHECK_OK(op->rmsnorm(be, &y.b.v, &x.b.v, &w.b.v, eps));
    CHECK_OK(op->rmsnorm(be, &y.f.v, &x.f.v, &w.f.v, eps));
    pair_check("rmsnorm", &y, 0);
    float *gy = tv_get(&y.b), *gx = tv_get(&x.f), *gw = tv_get(&w.f);
    double want[N * D];
    for (int i = 0; i < N; i++) {
        double ss = 0;
        for (int j = 0; j < D; j++) ss += (double)gx[i * D + j] * gx[i * D + j];
        const double inv = 1 / sqrt(ss / D + eps);
        for (int j = 0; j < D; j++) want[i * D + j] = gw[j] * gx[i * D + j] * inv;
    }
    near_double("rmsnorm", gy, want, N * D, 1e-6);
    free(gy), free(gx), free(gw);

    /* dw BF16, and F32 (the fp32 gradients of a bf16 model), and BF16 beside F32 activations */
    pair dy = pair_bf(N, D, 43), dx = pair_bf(N, D, 0), dw = pair_bf(1, D, 44);
    pair dw32 = pair_new(SRLM_F32, 1, D, 45);
    for (int acc = 1; acc >= 0; acc--) {
        CHECK_OK(op->rmsnorm_backward(be, &dx.b.v, &dw.b.v, &dy.b.v, &x.b.v, &w.b.v, eps, acc));
        CHECK_OK(op->rmsnorm_backward(be, &dx.f.v, &dw.f.v, &dy.f.v, &x.f.v, &w.f.v, eps, acc));
        pair_check("rmsnorm_backward dx", &dx, 0);
        pair_check(acc ? "rmsnorm_backward dw accumulate" : "rmsnorm_backward dw", &dw, 0);
        CHECK_OK(op->rmsnorm_backward(be, &dx.b.v, &dw32.b.v, &dy.b.v, &x.b.v, &w.b.v, eps, acc));
        CHECK_OK(op->rmsnorm_backward(be, &dx.f.v, &dw32.f.v, &dy.f.v, &x.f.v, &w.f.v, eps, acc));
        pair_check(acc ? "rmsnorm_backward dw F32 accumulate" : "rmsnorm_backward dw F32", &dw32, 0);
    }
    pair dx32 = pair_new(SRLM_F32, N, D, 0);
    CHECK_OK(op->rmsnorm_backward(be, &dx32.b.v, &dw.b.v, &dy.f.v, &x.f.v, &w.f.v, eps, 1));
    CHECK_OK(op->rmsnorm_backward(be, &dx32.f.v, &dw.f.v, &dy.f.v, &x.f.v, &w.f.v, eps, 1));
    pair_check("rmsnorm_backward F32 dx beside BF16 dw", &dx32, 0);
    pair_check("rmsnorm_backward BF16 dw of F32 activations", &dw, 0);
    pair_free(&x), pair_free(&w), pair_free(&y), pair_free(&dy), pair_free(&dx), pair_free(&dw),
        pair_free(&dw32), pair_free(&dx32);
}

static void test_elementwise(void) {
    enum { N = 7, D = 50, NH = 3, HD = 16 };
    pair g = pair_bf(N, D, 51), u = pair_bf(N, D, 52), o = pair_bf(N, D, 0);
    CHECK_OK(op->swiglu(be, &o.b.v, &g.b.v, &u.b.v));
    CHECK_OK(op->swiglu(be, &o.f.v, &g.f.v, &u.f.v));
    pair_check("swiglu", &o, 0);
    float *go = tv_get(&o.b), *gg = tv_get(&g.f), *gu = tv_get(&u.f);
    double want[N * D];
    for (int i = 0; i < N * D; i++) want[i] = gg[i] / (1 + exp(-(double)gg[i])) * gu[i];
    near_double("swiglu", go, want, N * D, 1e-6);
    free(go), free(gg), free(gu);

    pair dout = pair_bf(N, D, 53), dg = pair_bf(N, D, 0), du = pair_bf(N, D, 0);
    CHECK_OK(op->swiglu_backward(be, &dg.b.v, &du.b.v, &dout.b.v, &g.b.v, &u.b.v));
    CHECK_OK(op->swiglu_backward(be, &dg.f.v, &du.f.v, &dout.f.v, &g.f.v, &u.f.v));
    pair_check("swiglu_backward dgate", &dg, 0);
    pair_check("swiglu_backward dup", &du, 0);

    CHECK_OK(op->dropout(be, &dout.b.v, 0.3f, 99));
    CHECK_OK(op->dropout(be, &dout.f.v, 0.3f, 99));
    pair_check("dropout", &dout, 0);

    /* rope on 3 heads of 16 in 50 columns: the last 2 stay as they are */
    const int pos[N] = {0, 1, 5, 17, 300, 2, 4096};
    pair x = pair_bf(N, D, 54);
    CHECK_OK(op->rope(be, &x.b.v, pos, NH, HD, 10000.0f));
    CHECK_OK(op->rope(be, &x.f.v, pos, NH, HD, 10000.0f));
    pair_check("rope", &x, 0);
    CHECK_OK(op->rope_backward(be, &x.b.v, pos, NH, HD, 500000.0f));
    CHECK_OK(op->rope_backward(be, &x.f.v, pos, NH, HD, 500000.0f));
    pair_check("rope_backward", &x, 0);
    pair_free(&g), pair_free(&u), pair_free(&o), pair_free(&dout), pair_free(&dg), pair_free(&du), pair_free(&x);
}

/* rows x V logits with vocab shard [vs, vs + V) */
static void logits_case(const char *what, int64_t R, int64_t V, int64_t vs) {
    pair l = pair_bf(R, V, 61);
    float *mx[2], *se[2], *tl[2], *val[2];
    int *idx[2], *tg = malloc(sizeof(int) * (size_t)R);
    float *dlogp = malloc(sizeof(float) * (size_t)R);
    for (int64_t i = 0; i < R; i++) {
        tg[i] = (int)(vs + (i * 7919) % (V + 40) - 20); /* some outside the shard */
        dlogp[i] = i % 3 == 1 ? 0.0f : -0.5f - (float)i;
    }
    for (int k = 0; k < 2; k++) {
        const srlm_view *v = k ? &l.f.v : &l.b.v;
        mx[k] = malloc(sizeof(float) * (size_t)R), se[k] = malloc(sizeof(float) * (size_t)R);
        tl[k] = malloc(sizeof(float) * (size_t)R), val[k] = malloc(sizeof(float) * (size_t)R);
        idx[k] = malloc(sizeof(int) * (size_t)R);
        CHECK_OK(op->row_logsumexp_target(be, v, tg, vs, mx[k], se[k], tl[k]));
        CHECK_OK(op->row_argmax(be, v, idx[k], val[k]));
    }
    char name[96];
    snprintf(name, sizeof name, "%s row_logsumexp_target max", what), same_floats(name, mx[0], mx[1], R);
    snprintf(name, sizeof name, "%s row_logsumexp_target sum", what), same_floats(name, se[0], se[1], R);
    same_floats(name, tl[0], tl[1], R);
    snprintf(name, sizeof name, "%s row_argmax", what), same_floats(name, val[0], val[1], R);
    CHECK_MSG(!memcmp(idx[0], idx[1], sizeof(int) * (size_t)R), "%s: %s: argmax indices differ", be_name, what);
    CHECK_OK(op->logprob_backward(be, &l.b.v, mx[1], se[1], tg, vs, dlogp));
    CHECK_OK(op->logprob_backward(be, &l.f.v, mx[1], se[1], tg, vs, dlogp));
    snprintf(name, sizeof name, "%s logprob_backward", what), pair_check(name, &l, 0);
    for (int k = 0; k < 2; k++) free(mx[k]), free(se[k]), free(tl[k]), free(val[k]), free(idx[k]);
    free(tg), free(dlogp);
    pair_free(&l);
}

enum { B = 3, T = 5, NH = 4, NKV = 2, HD = 8, MAX_SEQ = 16, SLOTS = 4 };

static void test_attention(void) {
    int slot[B] = {2, 0, 3}, n_past[B] = {0, 6, 3}, n_new[B] = {5, 2, 0};
    srlm_attn_shape s = {B, T, NH, NKV, HD, MAX_SEQ, slot, n_past, n_new, 0, NULL};
    const int64_t R = B * T, KR = SLOTS * MAX_SEQ;
    pair q = pair_bf(R, NH * HD, 71), out = pair_bf(R, NH * HD, 0);
    pair k = pair_bf(KR, NKV * HD, 72), v = pair_bf(KR, NKV * HD, 73);
    /* cache rows the call must not read hold NaN */
    for (int c = 0; c < 2; c++) {
        pair *kv = c ? &v : &k;
        float *h = tv_get(&kv->f);
        for (int64_t r = 0; r < KR; r++) {
            int used = 0;
            for (int b = 0; b < B; b++) used |= r / MAX_SEQ == slot[b] && r % MAX_SEQ < n_past[b] + n_new[b];
            for (int j = 0; !used && j < NKV * HD; j++) h[r * NKV * HD + j] = NAN;
        }
        pair_set(kv, h);
        free(h);
    }
    tview lb = tv_new(SRLM_F32, R, NH, 0), lf = tv_new(SRLM_F32, R, NH, 0);
    CHECK_OK(op->fill(be, &lb.v, NAN));
    CHECK_OK(op->attention(be, &out.b.v, &q.b.v, &k.b.v, &v.b.v, &s, &lb.v));
    CHECK_OK(op->attention(be, &out.f.v, &q.f.v, &k.f.v, &v.f.v, &s, &lf.v));
    pair_check("attention", &out, 0);
    float *gl[2] = {tv_get(&lb), tv_get(&lf)};
    same_floats("attention lse", gl[0], gl[1], R * NH);

    float *go = tv_get(&out.b), *gq = tv_get(&q.f), *gk = tv_get(&k.f), *gv = tv_get(&v.f);
    double *want = calloc((size_t)(R * NH * HD), sizeof(double));
    for (int b = 0; b < B; b++)
        for (int t = 0; t < n_new[b]; t++)
            for (int h = 0; h < NH; h++) {
                const int len = n_past[b] + t + 1, kvh = h / (NH / NKV);
                const float *qr = gq + ((int64_t)b * T + t) * NH * HD + h * HD;
                double sc[MAX_SEQ], mx = -INFINITY, sum = 0;
                for (int j = 0; j < len; j++) {
                    const float *kr = gk + ((int64_t)slot[b] * MAX_SEQ + j) * NKV * HD + kvh * HD;
                    double dot = 0;
                    for (int d = 0; d < HD; d++) dot += (double)qr[d] * kr[d];
                    sc[j] = dot / sqrt((double)HD);
                    mx = sc[j] > mx ? sc[j] : mx;
                }
                for (int j = 0; j < len; j++) sum += sc[j] = exp(sc[j] - mx);
                double *o = want + ((int64_t)b * T + t) * NH * HD + h * HD;
                for (int j = 0; j < len; j++)
                    for (int d = 0; d < HD; d++)
                        o[d] += sc[j] / sum * gv[((int64_t)slot[b] * MAX_SEQ + j) * NKV * HD + kvh * HD + d];
            }
    near_double("attention", go, want, R * NH * HD, 1e-5);
    free(go), free(gq), free(gk), free(gv), free(want), free(gl[0]), free(gl[1]);

    /* backward, without and with the forward's saved state; dk and dv are
     * written in the sequences' slots only (slot 1 keeps its NaN) */
    pair dout = pair_bf(R, NH * HD, 74);
    for (int saved = 0; saved < 2; saved++) {
        pair dq = pair_bf(R, NH * HD, 0), dk = pair_bf(KR, NKV * HD, 0), dv = pair_bf(KR, NKV * HD, 0);
        CHECK_OK(op->attention_backward(be, &dq.b.v, &dk.b.v, &dv.b.v, &dout.b.v, &q.b.v, &k.b.v, &v.b.v, &s,
                                        saved ? &out.b.v : NULL, saved ? &lb.v : NULL));
        CHECK_OK(op->attention_backward(be, &dq.f.v, &dk.f.v, &dv.f.v, &dout.f.v, &q.f.v, &k.f.v, &v.f.v, &s,
                                        saved ? &out.f.v : NULL, saved ? &lf.v : NULL));
        pair_check(saved ? "attention_backward dq (saved)" : "attention_backward dq", &dq, 0);
        pair_check("attention_backward dk", &dk, 1);
        pair_check("attention_backward dv", &dv, 1);
        float *g = tv_get(&dk.b);
        int nan_in_slot = 0;
        for (int64_t r = 0; r < KR; r++)
            for (int j = 0; j < NKV * HD; j++) nan_in_slot += r / MAX_SEQ != 1 && isnan(g[r * NKV * HD + j]);
        CHECK_MSG(nan_in_slot == 0, "%s: attention_backward left %d dk values of used slots unwritten", be_name,
                  nan_in_slot);
        free(g);
        pair_free(&dq), pair_free(&dk), pair_free(&dv);
    }
    pair_free(&q), pair_free(&out), pair_free(&k), pair_free(&v), pair_free(&dout);
    tv_free(&lb), tv_free(&lf);
}

static void test_embedding_backward(void) {
    enum { V = 30, D = 11, N = 9 };
    const int ids[N] = {12, 40, 12, 5, 39, 12, 20, 2, 5}; /* shard [10, 40): repeats, and outside */
    pair dx = pair_bf(N + 2, D, 81), dx32 = pair_new(SRLM_F32, N, D, 82);
    pair dt = pair_bf(V, D, 83), dt32 = pair_new(SRLM_F32, V, D, 84);
    CHECK_OK(op->embedding_backward(be, &dt.b.v, &dx.b.v, ids, N, 10));
    CHECK_OK(op->embedding_backward(be, &dt.f.v, &dx.f.v, ids, N, 10));
    pair_check("embedding_backward", &dt, 0);
    CHECK_OK(op->embedding_backward(be, &dt32.b.v, &dx.b.v, ids, N, 10)); /* fp32 gradients of a bf16 model */
    CHECK_OK(op->embedding_backward(be, &dt32.f.v, &dx.f.v, ids, N, 10));
    pair_check("embedding_backward into F32", &dt32, 0);
    CHECK_OK(op->embedding_backward(be, &dt.b.v, &dx32.f.v, ids, N, 10)); /* and BF16 from F32 */
    CHECK_OK(op->embedding_backward(be, &dt.f.v, &dx32.f.v, ids, N, 10));
    pair_check("embedding_backward F32 into BF16", &dt, 0);
    pair_free(&dx), pair_free(&dx32), pair_free(&dt), pair_free(&dt32);
}

/* AdamW's working copy (work): the updated master rounded once to nearest
 * even (BF16) or the master's own bits (F32), in the same call; the master and
 * moments are the bits of the same step without it. */
static void test_adamw_work(void) {
    enum { N = 77 };
    const srlm_adamw_consts c = {(float)(1.0 - 1e-3 * 0.1), 0.1f, 0.001f, 0.999f, (float)sqrt(1.0 - pow(0.999, 2)),
                                 1e-8f, (float)(-(1e-3 / (1.0 - pow(0.9, 2))))};
    float hp[N], hg[N], hm[N], hv[N];
    for (int i = 0; i < N; i++) {
        hp[i] = (float)srlm_rng_normal(41, (uint64_t)i) * 0.05f; /* not bf16 values: rounding matters */
        hg[i] = (float)srlm_rng_normal(42, (uint64_t)i) * 1e-3f;
        hm[i] = (float)srlm_rng_normal(43, (uint64_t)i) * 1e-4f;
        hv[i] = fabsf((float)srlm_rng_normal(44, (uint64_t)i)) * 1e-6f;
    }
    float *got[3][3] = {{0}}, *work[3] = {0}; /* runs: no work, BF16 work, F32 work */
    const srlm_dtype wdt[3] = {SRLM_F32, SRLM_BF16, SRLM_F32};
    for (int k = 0; k < 3; k++) {
        tview p = tv_new(SRLM_F32, 1, N, 0), g = tv_new(SRLM_F32, 1, N, 0), m = tv_new(SRLM_F32, 1, N, 0);
        tview v = tv_new(SRLM_F32, 1, N, 0), w = tv_new(wdt[k], 1, N, 0);
        CHECK_OK(op->upload(be, &p.v, hp));
        CHECK_OK(op->upload(be, &g.v, hg));
        CHECK_OK(op->upload(be, &m.v, hm));
        CHECK_OK(op->upload(be, &v.v, hv));
        CHECK_OK(op->adamw(be, &p.v, &g.v, &m.v, &v.v, k ? &w.v : NULL, &c));
        got[k][0] = tv_get(&p), got[k][1] = tv_get(&m), got[k][2] = tv_get(&v), work[k] = tv_get(&w);
        tv_free(&p), tv_free(&g), tv_free(&m), tv_free(&v), tv_free(&w);
    }
    int moved = 0, bad_bf16 = 0, bad_f32 = 0, untouched = 0;
    for (int i = 0; i < N; i++) {
        moved += got[0][0][i] != hp[i];
        bad_bf16 += bits(work[1][i]) != bits(bf(got[0][0][i]));
        bad_f32 += bits(work[2][i]) != bits(got[0][0][i]);
        untouched += work[0][i] == SENTINEL; /* no work given: the view was left alone */
    }
    CHECK_MSG(moved == N, "%s: adamw moved %d of %d weights", be_name, moved, N);
    CHECK_MSG(bad_bf16 == 0, "%s: adamw's BF16 working copy: %d of %d not the master rounded", be_name, bad_bf16, N);
    CHECK_MSG(bad_f32 == 0, "%s: adamw's F32 working copy: %d of %d not the master", be_name, bad_f32, N);
    CHECK(untouched == N);
    for (int k = 1; k < 3; k++)
        for (int j = 0; j < 3; j++)
            CHECK_MSG(memcmp(got[k][j], got[0][j], sizeof(float) * N) == 0,
                      "%s: adamw with a working copy changed the update (run %d, array %d)", be_name, k, j);
    for (int k = 0; k < 3; k++) free(got[k][0]), free(got[k][1]), free(got[k][2]), free(work[k]);
    printf("%s: adamw writes the working copy (BF16 rounded once, F32 exact)\n", be_name);
}

/* the status, and the message naming the op */
static void refused(const char *what, srlm_status st, const char *op_name) {
    CHECK_MSG(st == SRLM_BAD_INPUT && strstr(srlm_last_error(), op_name),
              "%s: %s: status %d, message \"%s\"", be_name, what, (int)st, srlm_last_error());
    printf("%s: %s: %s\n", be_name, what, srlm_last_error());
}

/* sum_squares over several views in one call, each its own result (the
 * trainer's gradient norm hands it every tensor of its shard at once) */
static void test_sum_squares_views(void) {
    tview t = tv_new(SRLM_F32, 1, 5, 0), b = tv_new(SRLM_BF16, 1, 4, 0);
    CHECK_OK(op->upload(be, &t.v, (const float[5]){1, 2, 3, 4, 5}));
    const srlm_view xs[4] = {t.v, srlm_view_carve(t.v, 0, 1, 2), srlm_view_carve(t.v, 2, 1, 0),
                             srlm_view_carve(t.v, 2, 1, 3)};
    double out[4] = {-1, -1, -1, -1};
    CHECK_OK(op->sum_squares(be, xs, 4, out));
    CHECK_MSG(out[0] == 55 && out[1] == 5 && out[2] == 0 && out[3] == 50, "sum_squares: %g %g %g %g", out[0],
              out[1], out[2], out[3]);
    CHECK_OK(op->sum_squares(be, xs, 0, NULL));
    const srlm_view mixed[2] = {t.v, b.v};
    refused("sum_squares with a BF16 view among F32 ones", op->sum_squares(be, mixed, 2, out), "xs[1] is BF16");
    refused("sum_squares of a negative count", op->sum_squares(be, xs, -1, out), "sum_squares");
    tv_free(&t), tv_free(&b);
}

static void test_refused(void) {
    tview b = tv_new(SRLM_BF16, 4, 4, 0), f = tv_new(SRLM_F32, 4, 4, 0), b1 = tv_new(SRLM_BF16, 1, 4, 0);
    tview f1 = tv_new(SRLM_F32, 1, 4, 0);
    refused("matmul BF16 x with F32 w", op->matmul(be, &f.v, &b.v, &f.v, 0), "matmul");
    refused("matmul F32 inputs into BF16", op->matmul(be, &b.v, &f.v, &f.v, 0), "matmul");
    refused("matmul_dw F32 inputs into BF16", op->matmul_dw(be, &b.v, &f.v, &f.v, 1), "matmul_dw");
    refused("add F32 to BF16", op->add(be, &b.v, &f.v), "add");
    refused("rmsnorm F32 w for BF16 x", op->rmsnorm(be, &b.v, &b.v, &f1.v, 1e-5f), "rmsnorm");
    refused("embedding BF16 out from F32 table", op->embedding(be, &b.v, &f.v, (const int[]){0}, 1, 0),
            "embedding");
    refused("swiglu_backward mixed", op->swiglu_backward(be, &b.v, &b.v, &b.v, &f.v, &b.v), "swiglu_backward");
    const srlm_adamw_consts ac = {1, 0.1f, 0.001f, 0.999f, 1, 1e-8f, -1e-3f};
    refused("adamw on BF16", op->adamw(be, &b1.v, &f1.v, &f1.v, &f1.v, NULL, &ac), "adamw");
    srlm_view w16 = b1.v;
    w16.dtype = SRLM_F16;
    refused("adamw with an F16 working copy", op->adamw(be, &f1.v, &f1.v, &f1.v, &f1.v, &w16, &ac), "adamw");
    refused("adamw with a working copy of another size", op->adamw(be, &f1.v, &f1.v, &f1.v, &f1.v, &b.v, &ac),
            "adamw");
    refused("sum_squares of BF16", op->sum_squares(be, &b.v, 1, &(double){0}), "sum_squares");
    refused("scale of BF16", op->scale(be, &b.v, 0.5f), "scale");
    srlm_view h;
    refused("alloc F16", op->alloc(be, &h, SRLM_F16, 2, 2, "an f16 view"), "F16");
    srlm_view f16 = b.v;
    f16.dtype = SRLM_F16;
    refused("upload to F16", op->upload(be, &f16, (const float[16]){0}), "upload");
    refused("copy from F16", op->copy(be, &f.v, &f16), "copy");
    tv_free(&b), tv_free(&f), tv_free(&b1), tv_free(&f1);
}

static void run_all(srlm_backend *backend, const char *name) {
    be = backend, op = backend->ops, be_name = name;
    test_upload_fill_copy();
    test_rounding();
    test_gather();
    test_matmul();
    test_rmsnorm();
    test_elementwise();
    logits_case("logits", 7, 300, 1000);
    logits_case("wide logits", 3, (1 << 21) + 5, 0); /* staged in blocks of rows */
    logits_case("no rows", 0, 64, 0);
    test_attention();
    test_embedding_backward();
    test_adamw_work();
    test_refused();
    test_sum_squares_views();
}

/* The guarded backend's results equal the plain one's: upload, matmul into
 * BF16 and F32, copy F32 -> BF16, download. */
static void guarded_equals_plain(srlm_backend *plain, srlm_backend *guarded) {
    enum { N = 5, IN = 33, OUT = 12 };
    float *hx = malloc(sizeof(float) * N * IN), *hw = malloc(sizeof(float) * OUT * IN), *got[2][3];
    for (int i = 0; i < N * IN; i++) hx[i] = (float)srlm_rng_normal(5, (uint64_t)i);
    for (int i = 0; i < OUT * IN; i++) hw[i] = (float)srlm_rng_normal(6, (uint64_t)i);
    for (int k = 0; k < 2; k++) {
        be = k ? guarded : plain, op = be->ops;
        tview x32 = tv_new(SRLM_F32, N, IN, PAD), x = tv_new(SRLM_BF16, N, IN, PAD);
        tview w = tv_new(SRLM_BF16, OUT, IN, PAD);
        tview y = tv_new(SRLM_BF16, N, OUT, PAD), y32 = tv_new(SRLM_F32, N, OUT, PAD);
        CHECK_OK(op->upload(be, &x32.v, hx));
        CHECK_OK(op->copy(be, &x.v, &x32.v));
        CHECK_OK(op->upload(be, &w.v, hw));
        CHECK_OK(op->matmul(be, &y.v, &x.v, &w.v, 0));
        CHECK_OK(op->matmul(be, &y32.v, &x.v, &w.v, 0));
        got[k][0] = tv_get(&x), got[k][1] = tv_get(&y), got[k][2] = tv_get(&y32);
        tv_free(&x32), tv_free(&x), tv_free(&w), tv_free(&y), tv_free(&y32);
    }
    be_name = "cpu_guarded vs cpu";
    same_floats("copy F32 -> BF16", got[0][0], got[1][0], N * IN);
    same_floats("matmul into BF16", got[0][1], got[1][1], N * OUT);
    same_floats("matmul into F32", got[0][2], got[1][2], N * OUT);
    for (int k = 0; k < 2; k++) free(got[k][0]), free(got[k][1]), free(got[k][2]);
    free(hx), free(hw);
}

int main(void) {
    srlm_backend *plain = NULL, *guarded = NULL;
    CHECK_OK(srlm_backend_cpu_new(&plain, 2));
    CHECK_OK(srlm_backend_cpu_guarded_new(&guarded, 2));
    if (!plain || !guarded) TEST_DONE();
    run_all(plain, "cpu");
    run_all(guarded, "cpu_guarded");
    guarded_equals_plain(plain, guarded);
    srlm_backend_free(plain);
    srlm_backend_free(guarded);
    TEST_DONE();
}
