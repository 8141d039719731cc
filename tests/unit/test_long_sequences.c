/* Sequences longer than one attention block (64 query rows) on the tiny-gqa
 * fixture, which the transformers fixtures (<= 21 tokens) never reach:
 *  - the forward pass over 150 tokens at once equals token-by-token decoding
 *    through the KV cache (one row per call): max |dlogit| <= 2e-4 (logits up
 *    to ~30; fp32 summation order only);
 *  - gradients of sum(log-probs) over a right-padded batch of 150 and 131
 *    tokens equal central finite differences (h = 1e-2) on the attention
 *    weights of both layers, for the elements with the largest gradients:
 *    Richardson-extrapolated central differences (h = 1e-2 and 5e-3, which
 *    cancels the h^2 term), relative error <= 2e-3 (fp32 rounding of a loss of
 *    ~1e3 over 2h ~ 1e-2 leaves ~1e-2 absolute on gradients of ~50). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/rng.h"
#include "model/llama_train.h"
#include "test.h"
#include "train_batch.h"

enum { T = 150 };

static double loss_of(srlm_llama *m, srlm_train_acts *a, srlm_train_batch *b, float *lp, int n) {
    CHECK_OK(srlm_llama_train_forward(m, a, b, lp));
    double s = 0;
    for (int i = 0; i < n; i++) s += lp[i];
    return s;
}

int main(void) {
    srlm_backend *be;
    srlm_checkpoint ck;
    srlm_llama m;
    CHECK_OK(srlm_backend_cpu_new(&be, 0));
    if (test_failures || !load_fixture_model("tiny-gqa", be, &ck, &m)) TEST_DONE();

    /* forward: all at once vs one token at a time */
    static int ids[2 * T];
    for (int i = 0; i < 2 * T; i++) ids[i] = 3 + (int)(srlm_rng_u64(2, (uint64_t)i) % 300);
    srlm_kv_cache kv;
    srlm_llama_acts a;
    CHECK_OK(srlm_kv_cache_new(&kv, &m, 1, T));
    CHECK_OK(srlm_llama_acts_new(&a, &m, T, T));
    int slot = 0, past = 0, n = T;
    srlm_batch b = {1, T, ids, &slot, &past, &n, 0};
    CHECK_OK(srlm_llama_forward(&m, &kv, &a, &b));
    float *full = malloc(sizeof(float) * (size_t)T * m.vocab_local), *row = malloc(sizeof(float) * m.vocab_local);
    CHECK_OK(be->ops->download(be, full, &a.logits));
    double worst = 0;
    for (int t = 0; t < T; t++) {
        int p = t, one = 1;
        srlm_batch s = {1, 1, ids + t, &slot, &p, &one, 1};
        CHECK_OK(srlm_llama_forward(&m, &kv, &a, &s));
        srlm_view r = srlm_view_rows(a.logits, 0, 1);
        CHECK_OK(be->ops->download(be, row, &r));
        for (int j = 0; j < m.cfg.vocab_size; j++) {
            double d = fabs(row[j] - full[(size_t)t * m.vocab_local + j]);
            if (!(d <= worst)) worst = d;
        }
    }
    CHECK_MSG(worst <= 2e-4, "150 tokens at once vs one at a time: max |dlogit| %.3g", worst);
    printf("forward, 150 tokens at once vs one at a time: max |dlogit| %.2e\n", worst);
    free(full);
    free(row);
    srlm_llama_acts_free(&a, be);
    srlm_kv_cache_free(&kv, be);

    /* backward: finite differences through multi-block attention */
    enum { B = 2, N = B * T };
    int len[B] = {T, 131};
    srlm_train_acts ta;
    srlm_llama_grads g;
    CHECK_OK(srlm_train_acts_new(&ta, &m, N, 0));
    CHECK_OK(srlm_llama_grads_new(&g, &m, 0));
    srlm_train_batch tb = {B, T, ids, len, 0.0f, 0, NULL};
    static float lp[N], dl[N];
    for (int i = 0; i < N; i++) dl[i] = 1.0f;
    CHECK_OK(srlm_llama_train_forward(&m, &ta, &tb, lp));
    CHECK_OK(srlm_llama_train_backward(&m, &ta, &tb, dl, &g, 0));
    srlm_view *w[] = {&m.layers[0].wq, &m.layers[0].wk, &m.layers[0].wv, &m.layers[1].wq, &m.layers[1].wk};
    srlm_view *gw[] = {&g.layers[0].wq, &g.layers[0].wk, &g.layers[0].wv, &g.layers[1].wq, &g.layers[1].wk};
    double worst_rel = 0;
    for (int k = 0; k < 5; k++)
        for (int e = 0; e < 2; e++) {
            float *wd = w[k]->data, *gd = gw[k]->data;
            long count = (long)(w[k]->rows * w[k]->cols), best = e;
            for (long i = e; i < count; i += 2) if (fabsf(gd[i]) > fabsf(gd[best])) best = i;
            float orig = wd[best];
            double d[2];
            for (int r = 0; r < 2; r++) {
                float h = r ? 5e-3f : 1e-2f;
                wd[best] = orig + h;
                double plus = loss_of(&m, &ta, &tb, lp, N);
                wd[best] = orig - h;
                double minus = loss_of(&m, &ta, &tb, lp, N);
                /* the step actually taken in fp32 */
                d[r] = (plus - minus) / ((double)(orig + h) - (double)(orig - h));
            }
            wd[best] = orig;
            double fd = (4 * d[1] - d[0]) / 3, rel = fabs(fd - gd[best]) / fabs(fd);
            CHECK_MSG(rel <= 2e-3, "tensor %d element %ld: analytic %.6g, finite difference %.6g", k, best, gd[best], fd);
            if (!(rel <= worst_rel)) worst_rel = rel;
        }
    printf("backward, padded batch of 150 + 131 tokens: worst relative error vs finite differences %.2e\n", worst_rel);
    srlm_train_acts_free(&ta, &m);
    srlm_llama_grads_free(&g, &m);
    srlm_llama_free(&m);
    srlm_ckpt_close(&ck);
    srlm_backend_free(be);
    TEST_DONE();
}
