/* The training passes pack a right-padded batch (llama_train.c): only the real
 * tokens are computed, attention runs per sequence, or once for a batch with
 * nothing padded. On the tiny-gqa fixture, sequences of 40, 17 and 40 tokens:
 *  - the activations hold sum(len) rows, not B x T;
 *  - what sits on the padding (token ids, dlogp values, even NaN) changes no bit
 *    of the log-probs or the gradients, and padded rows' log-probs are 0;
 *  - each sequence's log-probs are its own: the padded batch {A, B, C} (one
 *    attention call per sequence) against {A, C} (nothing padded: one call for
 *    both) and {B} alone, |dlogp| <= 1e-5 x max |logp| (fp32 only: OpenBLAS
 *    picks other kernels for other row counts, whose sums round differently;
 *    seen 6e-7 relative, while a sequence seeing another's keys moves its
 *    log-probs by O(1)), and its gradients are those of the two smaller
 *    batches added, relative norm error <= 1e-5 (seen 3e-6);
 *  - prompts (srlm_train_batch's first): the LM head runs on the rows with a
 *    target only; the prompt rows' log-probs are 0 and what dlogp holds there
 *    (NaN) is never read; the other rows' log-probs and the gradients are those
 *    of the whole batch with dlogp 0 on the prompts (same tolerances: the LM
 *    head's GEMM has fewer rows). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "model/llama_train.h"
#include "test.h"
#include "train_batch.h"

enum { T = 40, NSEQ = 3 };

/* Forward and backward of sum_r w[r] * logp[r] over a batch; g written anew. */
static void run(srlm_llama *m, srlm_train_acts *a, const srlm_train_batch *b, const float *w, float *logp,
                srlm_llama_grads *g) {
    CHECK_OK(srlm_llama_train_forward(m, a, b, logp));
    CHECK_OK(srlm_llama_train_backward(m, a, b, w, g, 0));
}

static double rel_diff(const float *x, const float *y, int64_t n) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        num += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
        den += (double)y[i] * y[i];
    }
    return sqrt(num) / (den > 0 ? sqrt(den) : 1);
}

int main(void) {
    srlm_backend *be;
    srlm_checkpoint ck;
    srlm_llama m;
    CHECK_OK(srlm_backend_cpu_new(&be, 0));
    if (test_failures || !load_fixture_model("tiny-gqa", be, &ck, &m)) TEST_DONE();
    const int V = m.cfg.vocab_size;
    const int64_t P = m.n_params_local;

    /* the padded batch {A, B, C}: B's rows past 17 are padding */
    static int ids[NSEQ * T], ids2[NSEQ * T];
    static float w[NSEQ * T], w2[NSEQ * T], lp[NSEQ * T], lp2[NSEQ * T];
    int len[NSEQ] = {T, 17, T};
    for (int i = 0; i < NSEQ * T; i++) {
        ids[i] = 3 + (int)(srlm_rng_u64(5, (uint64_t)i) % (uint64_t)(V - 3));
        w[i] = 0.5f + (float)srlm_rng_uniform(6, (uint64_t)i);
    }
    srlm_train_acts a;
    srlm_llama_grads g, g2;
    CHECK_OK(srlm_train_acts_new(&a, &m, NSEQ * T, 0));
    CHECK_OK(srlm_llama_grads_new(&g, &m, 0));
    CHECK_OK(srlm_llama_grads_new(&g2, &m, 0));
    srlm_train_batch tb = {NSEQ, T, ids, len, 0.0f, 0, NULL};
    run(&m, &a, &tb, w, lp, &g);
    CHECK_MSG(a.n_rows == 2 * T + 17, "the activations hold %d rows, expected the %d real tokens", a.n_rows,
              2 * T + 17);
    printf("padded batch of %d x %d: %d rows computed\n", NSEQ, T, a.n_rows);

    /* other tokens on the padding, NaN weights where no row counts */
    memcpy(ids2, ids, sizeof ids);
    memcpy(w2, w, sizeof w);
    for (int t = 17; t < T; t++) {
        ids2[T + t] = (ids[T + t] + 7) % V;
        w2[T + t] = NAN;
    }
    for (int s = 0; s < NSEQ; s++) w2[s * T + len[s] - 1] = NAN; /* last token: no target */
    srlm_train_batch tb2 = tb;
    tb2.ids = ids2;
    run(&m, &a, &tb2, w2, lp2, &g2);
    CHECK_MSG(!memcmp(lp, lp2, sizeof lp), "log-probs change with what sits on the padding");
    CHECK_MSG(!memcmp(g.flat.data, g2.flat.data, sizeof(float) * (size_t)P),
              "gradients change with what sits on the padding");
    int nonzero = 0;
    for (int s = 0; s < NSEQ; s++)
        for (int t = len[s] - 1; t < T; t++) nonzero += lp[s * T + t] != 0.0f;
    CHECK_MSG(nonzero == 0, "%d rows without a target have a nonzero log-prob", nonzero);

    /* {A, C} (nothing padded) and {B} alone */
    static int ids_ac[2 * T];
    static float w_ac[2 * T], lp_ac[2 * T], lp_b[T];
    memcpy(ids_ac, ids, sizeof(int) * T);
    memcpy(ids_ac + T, ids + 2 * T, sizeof(int) * T);
    memcpy(w_ac, w, sizeof(float) * T);
    memcpy(w_ac + T, w + 2 * T, sizeof(float) * T);
    int len_ac[2] = {T, T}, len_b = 17;
    srlm_train_batch tac = {2, T, ids_ac, len_ac, 0.0f, 0, NULL}, tbb = {1, 17, ids + T, &len_b, 0.0f, 0, NULL};
    srlm_llama_grads gs;
    CHECK_OK(srlm_llama_grads_new(&gs, &m, 0));
    run(&m, &a, &tac, w_ac, lp_ac, &g2);
    CHECK_MSG(a.n_rows == 2 * T, "{A, C}: %d rows, expected %d", a.n_rows, 2 * T);
    run(&m, &a, &tbb, w + T, lp_b, &gs);
    double worst = 0, biggest = 0;
    for (int t = 0; t < T; t++) {
        double d[3] = {fabs(lp_ac[t] - lp[t]), fabs(lp_ac[T + t] - lp[2 * T + t]),
                       t < 17 ? fabs(lp_b[t] - lp[T + t]) : 0};
        for (int k = 0; k < 3; k++) if (!(d[k] <= worst)) worst = d[k];
        for (int s = 0; s < NSEQ; s++) if (fabs(lp[s * T + t]) > biggest) biggest = fabs(lp[s * T + t]);
    }
    CHECK_MSG(worst <= 1e-5 * biggest, "a sequence's log-probs depend on its batch: max |dlogp| %.3g of %.3g",
              worst, biggest);
    float *sum = g2.flat.data;
    const float *gb = gs.flat.data;
    for (int64_t i = 0; i < P; i++) sum[i] += gb[i];
    double rel = rel_diff(sum, g.flat.data, P);
    CHECK_MSG(rel <= 1e-5, "gradients of {A, B, C} vs {A, C} + {B}: relative error %.3g", rel);
    printf("{A, B, C} vs {A, C} and {B}: max |dlogp| %.2e (log-probs up to %.1f), gradients within %.2e relative\n",
           worst, biggest, rel);

    /* prompts of 10, 5 and 0 rows: the LM head on the other rows only */
    const int first[NSEQ] = {10, 5, 0};
    static float w_mask[NSEQ * T], w_nan[NSEQ * T], lp_f[NSEQ * T];
    int want_sel = 0;
    for (int s = 0; s < NSEQ; s++)
        for (int t = 0; t < T; t++) {
            const int i = s * T + t, counted = t >= first[s] && t + 1 < len[s];
            w_mask[i] = counted ? w[i] : 0.0f;
            w_nan[i] = counted ? w[i] : NAN;
            want_sel += counted;
        }
    srlm_train_batch tf = tb;
    tf.first = first;
    run(&m, &a, &tb, w_mask, lp, &g);
    run(&m, &a, &tf, w_nan, lp_f, &g2);
    CHECK_MSG(a.n_sel == want_sel, "the LM head ran on %d rows, expected the %d with a target", a.n_sel, want_sel);
    double pworst = 0;
    int prompt_nonzero = 0, same_bits = 0;
    for (int s = 0; s < NSEQ; s++)
        for (int t = 0; t + 1 < len[s]; t++) {
            const int i = s * T + t;
            if (t < first[s]) { prompt_nonzero += lp_f[i] != 0.0f; continue; }
            same_bits += !memcmp(&lp_f[i], &lp[i], sizeof(float));
            if (!(fabs(lp_f[i] - lp[i]) <= pworst)) pworst = fabs(lp_f[i] - lp[i]);
        }
    CHECK_MSG(prompt_nonzero == 0, "%d prompt rows have a nonzero log-prob", prompt_nonzero);
    CHECK_MSG(pworst <= 1e-5 * biggest, "with prompts: max |dlogp| %.3g of %.3g", pworst, biggest);
    rel = rel_diff(g2.flat.data, g.flat.data, P);
    CHECK_MSG(rel <= 1e-5, "with prompts: gradients differ by %.3g relative", rel);
    printf("prompts of 10, 5, 0 rows: LM head on %d of %d rows, log-probs within %.2e (%d of %d bit-identical), "
           "gradients within %.2e relative\n", a.n_sel, a.n_rows, pworst, same_bits, want_sel, rel);

    srlm_llama_grads_free(&gs, &m);
    srlm_llama_grads_free(&g, &m);
    srlm_llama_grads_free(&g2, &m);
    srlm_train_acts_free(&a, &m);
    srlm_llama_free(&m);
    srlm_ckpt_close(&ck);
    srlm_backend_free(be);
    TEST_DONE();
}
