/* The CPU backend's attention forward writes each row's log-sum-exp (the
 * backward's saved state, and the CPU twin of the CUDA kernels' lse) equal to
 * a double-precision computation on the same inputs within 1e-5 absolute
 * (fp32 scores of size ~5, summed over <= 40 keys), 0 on padding rows; an
 * lse view of the wrong shape or with padded rows, and a backward given the
 * forward's out without its lse, are refused. Both the plain CPU backend and the
 * guarded one (device-memory rules) run it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/factory.h"
#include "core/rng.h"
#include "test.h"

enum { B = 3, T = 12, NH = 4, NKV = 2, HD = 16, MAX_SEQ = 40, SLOTS = 4 };

static void run(srlm_backend_kind kind, const char *name) {
    srlm_backend *be = NULL;
    CHECK_OK(srlm_backend_new(kind, 1, 0, &be));
    if (!be) return;
    const srlm_backend_ops *op = be->ops;
    int slot[B] = {2, 0, 3}, n_past[B] = {0, 20, 7}, n_new[B] = {12, 5, 0};
    srlm_attn_shape s = {B, T, NH, NKV, HD, MAX_SEQ, slot, n_past, n_new, 0, NULL};
    const int64_t rows = (int64_t)B * T, kvrows = (int64_t)SLOTS * MAX_SEQ;
    float *hq = malloc(sizeof(float) * rows * NH * HD), *hk = malloc(sizeof(float) * kvrows * NKV * HD);
    float *hv = malloc(sizeof(float) * kvrows * NKV * HD), *hl = malloc(sizeof(float) * rows * NH);
    uint64_t c = 0;
    for (int64_t i = 0; i < rows * NH * HD; i++) hq[i] = (float)srlm_rng_normal(7, c++);
    for (int64_t i = 0; i < kvrows * NKV * HD; i++) hk[i] = (float)srlm_rng_normal(7, c++), hv[i] = (float)srlm_rng_normal(7, c++);
    srlm_view q, k, v, out, lse;
    CHECK_OK(op->alloc(be, &q, SRLM_F32, rows, NH * HD, "q"));
    CHECK_OK(op->alloc(be, &out, SRLM_F32, rows, NH * HD, "out"));
    CHECK_OK(op->alloc(be, &k, SRLM_F32, kvrows, NKV * HD, "k"));
    CHECK_OK(op->alloc(be, &v, SRLM_F32, kvrows, NKV * HD, "v"));
    CHECK_OK(op->alloc(be, &lse, SRLM_F32, rows, NH, "lse"));
    CHECK_OK(op->upload(be, &q, hq));
    CHECK_OK(op->upload(be, &k, hk));
    CHECK_OK(op->upload(be, &v, hv));
    CHECK_OK(op->fill(be, &lse, NAN)); /* poisoned: every entry must be written */
    CHECK_OK(op->attention(be, &out, &q, &k, &v, &s, &lse));
    CHECK_OK(op->download(be, hl, &lse));

    double worst = 0;
    const double scale = 1.0 / sqrt((double)HD);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < NH; h++) {
                double want = 0;
                if (t < n_new[b]) {
                    const float *qr = hq + ((int64_t)b * T + t) * NH * HD + h * HD;
                    const int kvh = h / (NH / NKV), len = n_past[b] + t + 1;
                    double mx = -INFINITY, sc[MAX_SEQ], sum = 0;
                    for (int j = 0; j < len; j++) {
                        const float *kr = hk + ((int64_t)slot[b] * MAX_SEQ + j) * NKV * HD + kvh * HD;
                        double dot = 0;
                        for (int d = 0; d < HD; d++) dot += (double)qr[d] * kr[d];
                        sc[j] = dot * scale;
                        mx = sc[j] > mx ? sc[j] : mx;
                    }
                    for (int j = 0; j < len; j++) sum += exp(sc[j] - mx);
                    want = mx + log(sum);
                }
                const double e = fabs(hl[((int64_t)b * T + t) * NH + h] - want);
                worst = isnan(e) || e > worst ? (isnan(e) ? INFINITY : e) : worst;
            }
    printf("%s: lse max abs error %.2e\n", name, worst);
    CHECK_MSG(worst <= 1e-5, "%s: lse error %.3g > 1e-5", name, worst);

    /* the backward's saved state comes as a pair */
    CHECK(op->attention_backward(be, &q, &k, &v, &out, &q, &k, &v, &s, &out, NULL) == SRLM_BAD_INPUT);
    printf("%s: saved out without lse: %s\n", name, srlm_last_error());

    srlm_view short_lse = srlm_view_rows(lse, 0, rows - 1);
    CHECK(op->attention(be, &out, &q, &k, &v, &s, &short_lse) == SRLM_BAD_INPUT);
    printf("%s: lse of the wrong shape: %s\n", name, srlm_last_error());

    srlm_view wide;
    CHECK_OK(op->alloc(be, &wide, SRLM_F32, rows, NH + 1, "lse with a padded row"));
    srlm_view strided = wide;
    strided.cols = NH; /* the right shape, rows not contiguous */
    CHECK(op->attention(be, &out, &q, &k, &v, &s, &strided) == SRLM_BAD_INPUT);
    printf("%s: lse with padded rows: %s\n", name, srlm_last_error());
    op->free(be, &wide);

    srlm_view *views[] = {&q, &k, &v, &out, &lse};
    for (int i = 0; i < 5; i++) op->free(be, views[i]);
    srlm_backend_free(be);
    free(hq), free(hk), free(hv), free(hl);
}

int main(void) {
    run(SRLM_BACKEND_CPU, "cpu");
    run(SRLM_BACKEND_CPU_GUARDED, "cpu_guarded");
    TEST_DONE();
}
