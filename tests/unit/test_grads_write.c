/* A step's first micro-batch writes the gradients (srlm_llama_train_backward
 * with accumulate 0: the weight-gradient GEMMs with beta 0, the norms' sums
 * stored, the untied embedding table and the flat buffer's padding zeroed)
 * where it used to add them into a buffer zeroed by a pass of its own. Here,
 * against that way, on a gradient buffer filled with NaN first (so any element
 * the write leaves alone shows) and with 37 elements of padding past the
 * parameters (the ZeRO-1 reduce-scatter's room, which must read as zeros):
 *  - one micro-batch; two (the second adds); a micro-batch in which no row
 *    has a target (every row a prompt row: the LM head's gradient is zeros);
 *  - the untied tiny-gqa model, the tied tiny-rope (the head's gradient and
 *    the embedding's are one buffer), and tiny-gqa in bf16 (fp32 gradients
 *    of bf16 weights, through the CPU backend's bf16 staging).
 * Equal values, compared with == (a zero sum may come out -0 one way and +0
 * the other): beta 0 against beta 1 over zeros is the same sum in the same
 * order, so nothing else may differ. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "model/llama_train.h"
#include "test.h"
#include "train_batch.h"

enum { T = 24, NSEQ = 3, PAD = 37 };

/* Elements of the whole flat buffers (parameters and padding) that differ. */
static int64_t count_unequal(srlm_llama *m, const srlm_llama_grads *a, const srlm_llama_grads *b, int64_t n,
                             int64_t *first) {
    float *x = malloc(sizeof(float) * (size_t)n), *y = malloc(sizeof(float) * (size_t)n);
    CHECK_OK(m->be->ops->download(m->be, x, &a->flat));
    CHECK_OK(m->be->ops->download(m->be, y, &b->flat));
    int64_t bad = 0;
    *first = -1;
    for (int64_t i = 0; i < n; i++)
        if (!(x[i] == y[i])) {
            if (*first < 0) *first = i;
            bad++;
        }
    free(x);
    free(y);
    return bad;
}

static void fwd_bwd(srlm_llama *m, srlm_train_acts *a, const srlm_train_batch *b, const float *w, float *lp,
                    srlm_llama_grads *g, int accumulate) {
    CHECK_OK(srlm_llama_train_forward(m, a, b, lp));
    CHECK_OK(srlm_llama_train_backward(m, a, b, w, g, accumulate));
}

static void check_model(const char *name, srlm_dtype dtype) {
    srlm_backend *be;
    srlm_checkpoint ck;
    srlm_llama m;
    char dir[1024];
    CHECK_OK(srlm_backend_cpu_new(&be, 0));
    be->dtype = dtype;
    snprintf(dir, sizeof dir, "%s/llama/%s", test_env("SRLM_FIXTURES", "tests/fixtures"), name);
    const int before = test_failures;
    CHECK_OK(srlm_ckpt_open(&ck, dir));
    if (test_failures == before) CHECK_OK(srlm_llama_load_for_training(&m, &ck, be, NULL));
    if (test_failures != before) return;
    const int V = m.cfg.vocab_size;
    const int64_t n = m.n_params_local + PAD;

    static int ids[2][NSEQ * T];
    static float w[NSEQ * T], lp[NSEQ * T];
    int len[NSEQ] = {T, 11, T}, all_prompt[NSEQ] = {T, 11, T};
    for (int i = 0; i < NSEQ * T; i++) {
        ids[0][i] = 3 + (int)(srlm_rng_u64(11, (uint64_t)i) % (uint64_t)(V - 3));
        ids[1][i] = 3 + (int)(srlm_rng_u64(12, (uint64_t)i) % (uint64_t)(V - 3));
        w[i] = -0.5f - (float)srlm_rng_uniform(13, (uint64_t)i);
    }
    srlm_train_acts a;
    srlm_llama_grads ga, gb;
    CHECK_OK(srlm_train_acts_new(&a, &m, NSEQ * T, 0));
    CHECK_OK(srlm_llama_grads_new(&ga, &m, n));
    CHECK_OK(srlm_llama_grads_new(&gb, &m, n));
    srlm_train_batch b0 = {NSEQ, T, ids[0], len, 0.0f, 0, NULL}, b1 = b0, bp = b0;
    b1.ids = ids[1];
    bp.first = all_prompt; /* no row has a target */

    const char *cases[] = {"one micro-batch", "two micro-batches", "no row with a target"};
    for (int c = 0; c < 3; c++) {
        const srlm_train_batch *first = c == 2 ? &bp : &b0;
        /* the old way: zeros, then every micro-batch adds */
        CHECK_OK(srlm_llama_grads_zero(&ga, &m));
        fwd_bwd(&m, &a, first, w, lp, &ga, 1);
        if (c == 1) fwd_bwd(&m, &a, &b1, w, lp, &ga, 1);
        /* the new: whatever the buffer held, the first writes */
        CHECK_OK(be->ops->fill(be, &gb.flat, NAN));
        fwd_bwd(&m, &a, first, w, lp, &gb, 0);
        if (c == 1) fwd_bwd(&m, &a, &b1, w, lp, &gb, 1);
        int64_t at;
        const int64_t bad = count_unequal(&m, &ga, &gb, n, &at);
        CHECK_MSG(bad == 0, "%s %s, %s: %lld of %lld gradient elements differ (the first at %lld of %lld "
                  "parameters)", name, srlm_dtype_name(dtype), cases[c], (long long)bad, (long long)n,
                  (long long)at, (long long)m.n_params_local);
        if (c == 2) { /* and the head's gradient is zeros: no row reached it */
            float *h = malloc(sizeof(float) * (size_t)(gb.lm_head.rows * gb.lm_head.cols));
            srlm_view hv = gb.lm_head;
            CHECK_OK(be->ops->download(be, h, &hv));
            int nonzero = 0;
            for (int64_t i = 0; i < hv.rows * hv.cols; i++) nonzero += h[i] != 0.0f;
            /* tied: the table's rows of the batch's tokens got their gradient after it */
            if (!m.tied) CHECK_MSG(nonzero == 0, "%s: %d LM head gradient elements nonzero", name, nonzero);
            free(h);
        }
        if (bad == 0)
            printf("%-9s %-4s %-22s: written over NaN = zeroed then added (%lld elements, %d of padding)\n", name,
                   srlm_dtype_name(dtype), cases[c], (long long)n, PAD);
    }
    srlm_llama_grads_free(&ga, &m);
    srlm_llama_grads_free(&gb, &m);
    srlm_train_acts_free(&a, &m);
    srlm_llama_free(&m);
    srlm_ckpt_close(&ck);
    srlm_backend_free(be);
}

int main(void) {
    check_model("tiny-gqa", SRLM_F32);
    check_model("tiny-rope", SRLM_F32); /* tied embeddings */
    check_model("tiny-gqa", SRLM_BF16);
    TEST_DONE();
}
