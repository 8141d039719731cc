/* srlm_llama_prefill (prompts packed one after another, attention through a
 * padded scratch) against srlm_llama_forward on each prompt alone, on the
 * tiny-gqa fixture, fp32 and bf16 on the CPU backend and fp32 on the guarded
 * one (device-memory paths):
 *  - the last-row logits of each prompt and every layer's K and V rows of its
 *    slot agree; one prompt continues cached rows (n_past > 0). Tolerance:
 *    fp32 1e-5 x the largest |logit| (the two differ only in the row counts
 *    the GEMMs see, i.e. summation order); bf16 the same forward rounds the
 *    same values at the same places, so 1e-2 x max |logit| (a few bf16 ulps
 *    of rounding one ulp apart, not an error budget);
 *  - cache rows past each prompt stay as they were (the padding rows of the
 *    attention's layout are never written);
 *  - no padded scratch, more padded rows than it or the activations hold,
 *    not last_only, a token outside the vocabulary: refused with a message. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "model/llama.h"
#include "test.h"

enum { NP = 3, MAX_SEQ = 48, SLOTS = 4 };
static const int lens[NP] = {5, 31, 12}; /* new rows of each prompt */
static const int past[NP] = {0, 0, 7};   /* the third continues 7 cached rows */
static const int slots[NP] = {3, 0, 2};

static void host_rows(srlm_backend *be, const srlm_view *v, float *out) {
    CHECK_OK(be->ops->download(be, out, v));
}

/* Fill the cached rows of the prompts with past > 0, in both caches alike. */
static void warm(srlm_llama *m, srlm_kv_cache *kv, srlm_llama_acts *a, int ids[NP][64]) {
    for (int i = 0; i < NP; i++) {
        if (!past[i]) continue;
        int zero = 0, n = past[i];
        srlm_batch b = {1, n, ids[i], &slots[i], &zero, &n, 1};
        CHECK_OK(srlm_llama_forward(m, kv, a, &b));
    }
}

static void compare(const char *name, srlm_backend *be, srlm_checkpoint *ck, double tol_rel) {
    srlm_llama m;
    CHECK_OK(srlm_llama_load(&m, ck, be, NULL));
    int ids[NP][64], packed[128], n_new[NP], n_past[NP];
    int total = 0, T = 0;
    for (int i = 0; i < NP; i++) {
        for (int t = 0; t < past[i] + lens[i]; t++) ids[i][t] = 3 + (int)(srlm_rng_u64(7 + i, (uint64_t)t) % 250);
        memcpy(packed + total, ids[i] + past[i], sizeof(int) * (size_t)lens[i]);
        total += lens[i];
        n_new[i] = lens[i];
        n_past[i] = past[i];
        if (lens[i] > T) T = lens[i];
    }
    srlm_kv_cache kv_a, kv_p;
    srlm_llama_acts acts;
    CHECK_OK(srlm_kv_cache_new(&kv_a, &m, SLOTS, MAX_SEQ));
    CHECK_OK(srlm_kv_cache_new(&kv_p, &m, SLOTS, MAX_SEQ));
    CHECK_OK(srlm_llama_acts_new(&acts, &m, 128, NP));
    const int64_t kv_elems = (int64_t)SLOTS * MAX_SEQ * kv_a.k[0].cols;
    float *ka = malloc(sizeof(float) * (size_t)kv_elems), *kp = malloc(sizeof(float) * (size_t)kv_elems);
    float *la = malloc(sizeof(float) * (size_t)NP * m.vocab_padded), *lp = malloc(sizeof(float) * (size_t)NP * m.vocab_padded);
    /* the same poison in both caches' unwritten rows: a write past a prompt shows */
    float *poison = malloc(sizeof(float) * (size_t)kv_elems);
    for (int64_t i = 0; i < kv_elems; i++) poison[i] = 1000.0f + (float)(i % 97);
    for (int l = 0; l < m.n_layers; l++) {
        CHECK_OK(be->ops->upload(be, &kv_a.k[l], poison));
        CHECK_OK(be->ops->upload(be, &kv_a.v[l], poison));
        CHECK_OK(be->ops->upload(be, &kv_p.k[l], poison));
        CHECK_OK(be->ops->upload(be, &kv_p.v[l], poison));
    }

    /* refusals first: no padded scratch yet */
    srlm_batch pb = {NP, T, packed, slots, n_past, n_new, 1};
    srlm_status st = srlm_llama_prefill(&m, &kv_p, &acts, &pb);
    CHECK_MSG(st != SRLM_OK && strstr(srlm_last_error(), "padded"), "%s: prefill without scratch: %s", name,
              srlm_last_error());
    CHECK_OK(srlm_llama_acts_reserve_padded(&acts, &m, NP * T - 1));
    st = srlm_llama_prefill(&m, &kv_p, &acts, &pb);
    CHECK_MSG(st != SRLM_OK && strstr(srlm_last_error(), "padded rows"), "%s: too small a scratch: %s", name,
              srlm_last_error());
    CHECK_OK(srlm_llama_acts_reserve_padded(&acts, &m, 1000)); /* more padded rows than the activations' 128 */
    CHECK_OK(srlm_llama_prefill(&m, &kv_p, &acts, &pb)); /* its rows are written again below */
    srlm_batch wide = pb;
    wide.T = 129 / NP + 1; /* B x T past the activations' rows, though within the scratch */
    st = srlm_llama_prefill(&m, &kv_p, &acts, &wide);
    CHECK_MSG(st != SRLM_OK && strstr(srlm_last_error(), "padded rows"), "%s: padded rows past the activations: %s",
              name, srlm_last_error());
    CHECK_OK(srlm_llama_acts_reserve_padded(&acts, &m, NP * T));
    srlm_batch all_rows = pb;
    all_rows.last_only = 0;
    st = srlm_llama_prefill(&m, &kv_p, &acts, &all_rows);
    CHECK_MSG(st != SRLM_OK && strstr(srlm_last_error(), "last_only"), "%s: not last_only: %s", name, srlm_last_error());
    packed[lens[0] + 4] = 1 << 20;
    st = srlm_llama_prefill(&m, &kv_p, &acts, &pb);
    CHECK_MSG(st == SRLM_BAD_INPUT && strstr(srlm_last_error(), "position 4 of sequence 1"), "%s: bad id: %s", name,
              srlm_last_error());
    packed[lens[0] + 4] = ids[1][past[1] + 4];

    /* each prompt alone */
    warm(&m, &kv_a, &acts, ids);
    for (int i = 0; i < NP; i++) {
        srlm_batch b = {1, lens[i], ids[i] + past[i], &slots[i], &n_past[i], &n_new[i], 1};
        CHECK_OK(srlm_llama_forward(&m, &kv_a, &acts, &b));
        srlm_view row = srlm_view_rows(acts.logits, 0, 1);
        host_rows(be, &row, la + (size_t)i * m.vocab_padded);
    }
    /* all packed */
    warm(&m, &kv_p, &acts, ids);
    CHECK_OK(srlm_llama_prefill(&m, &kv_p, &acts, &pb));
    srlm_view rows = srlm_view_rows(acts.logits, 0, NP);
    host_rows(be, &rows, lp);

    double worst = 0, scale = 0;
    for (int i = 0; i < NP; i++)
        for (int c = 0; c < m.cfg.vocab_size; c++) {
            double x = la[(size_t)i * m.vocab_padded + c], y = lp[(size_t)i * m.vocab_padded + c];
            if (fabs(x) > scale) scale = fabs(x);
            if (fabs(x - y) > worst) worst = fabs(x - y);
        }
    CHECK_MSG(scale > 0.1 && worst <= tol_rel * scale, "%s: last-row logits: max diff %.3g (max |logit| %.3g, "
              "tolerance %.3g)", name, worst, scale, tol_rel * scale);
    double kv_worst = 0;
    long outside = 0;
    for (int l = 0; l < m.n_layers; l++)
        for (int which = 0; which < 2; which++) {
            host_rows(be, which ? &kv_a.v[l] : &kv_a.k[l], ka);
            host_rows(be, which ? &kv_p.v[l] : &kv_p.k[l], kp);
            for (int64_t i = 0; i < kv_elems; i++) {
                int64_t row = i / kv_a.k[0].cols, s = row / MAX_SEQ, pos = row % MAX_SEQ;
                int mine = 0;
                for (int p = 0; p < NP; p++) mine |= slots[p] == s && pos < past[p] + lens[p];
                if (mine && fabs(ka[i] - kp[i]) > kv_worst) kv_worst = fabs(ka[i] - kp[i]);
                if (!mine) outside += ka[i] != kp[i] || fabs(kp[i] - poison[i]) > 0.01 * poison[i]; /* bf16 */
            }
        }
    CHECK_MSG(kv_worst <= tol_rel * 10, "%s: K/V rows: max diff %.3g", name, kv_worst);
    CHECK_MSG(outside == 0, "%s: %ld cache values outside the prompts' rows were written", name, outside);
    printf("%-14s packed prefill vs each prompt alone: logits max diff %.3g (max |logit| %.3g), K/V %.3g\n", name,
           worst, scale, kv_worst);
    free(ka);
    free(kp);
    free(la);
    free(lp);
    free(poison);
    srlm_llama_acts_free(&acts, be);
    srlm_kv_cache_free(&kv_a, be);
    srlm_kv_cache_free(&kv_p, be);
    srlm_llama_free(&m);
}

int main(void) {
    const char *fx = test_env("SRLM_FIXTURES", "tests/fixtures");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/llama/tiny-gqa", fx);
    srlm_checkpoint ck;
    CHECK_OK(srlm_ckpt_open(&ck, dir));
    srlm_backend *be;
    CHECK_OK(srlm_backend_cpu_new(&be, 0));
    compare("cpu float32", be, &ck, 1e-5);
    be->dtype = SRLM_BF16;
    compare("cpu bfloat16", be, &ck, 1e-2);
    srlm_backend_free(be);
    CHECK_OK(srlm_backend_cpu_guarded_new(&be, 0));
    compare("cpu_guarded", be, &ck, 1e-5);
    srlm_backend_free(be);
    srlm_ckpt_close(&ck);
    TEST_DONE();
}
