/* Two float32 checkpoints (single safetensors files) compared tensor by tensor
 * in units of a learning rate: how the training tests compare runs (DESIGN.md:
 * weight deltas relative to the learning rate, since Adam moves an element by
 * ~lr whatever the size of its gradient). Shared by test_trainer_torch and
 * test_dist_train. */
#ifndef SRLM_TEST_WEIGHTS_CHECK_H
#define SRLM_TEST_WEIGHTS_CHECK_H

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "io/safetensors.h"
#include "test.h"

/* Every tensor of ref is in ours, both float32 and of the same size, and the
 * counts of tensors are equal; per tensor the RMS of ours - ref <= rms_max * lr,
 * every element within el_max * lr. Prints the worst of each. */
static inline void check_weights(const char *ours, const char *ref, double lr, double rms_max, double el_max,
                                 const char *what) {
    srlm_safetensors a, b;
    const int before = test_failures;
    CHECK_OK(srlm_st_open(&a, ours));
    CHECK_OK(srlm_st_open(&b, ref));
    if (test_failures != before) { /* closing a file that failed to open is harmless */
        srlm_st_close(&a);
        srlm_st_close(&b);
        return;
    }
    CHECK_MSG(a.n_tensors == b.n_tensors, "%s: %d tensors, the reference has %d", what, a.n_tensors, b.n_tensors);
    double worst_rms = 0, worst_el = 0;
    const char *worst = "";
    for (int i = 0; i < b.n_tensors; i++) {
        const srlm_st_tensor *want = &b.tensors[i], *got = srlm_st_find(&a, want->name);
        const int same = got && got->dtype == SRLM_F32 && want->dtype == SRLM_F32 && got->nbytes == want->nbytes;
        CHECK_MSG(same, "%s: %s missing, not float32 or of another size", what, want->name);
        if (!same) continue;
        const size_t n = want->nbytes / sizeof(float);
        double sum = 0;
        for (size_t k = 0; k < n; k++) {
            float u, w; /* the mapped data may be unaligned */
            memcpy(&u, (const char *)got->data + k * sizeof u, sizeof u);
            memcpy(&w, (const char *)want->data + k * sizeof w, sizeof w);
            const double d = ((double)u - w) / lr;
            sum += d * d;
            if (!(fabs(d) <= worst_el)) worst_el = fabs(d);
        }
        const double rms = sqrt(sum / (double)(n ? n : 1));
        if (!(rms <= worst_rms)) { worst_rms = rms; worst = want->name; }
        CHECK_MSG(rms <= rms_max, "%s: %s differs by %.4g lr (RMS)", what, want->name, rms);
    }
    CHECK_MSG(worst_el <= el_max, "%s: an element differs by %.3g lr", what, worst_el);
    printf("%s: %d tensors, worst RMS |w - w_ref| %.2e lr (%s), worst element %.2e lr\n", what, b.n_tensors,
           worst_rms, worst, worst_el);
    srlm_st_close(&a);
    srlm_st_close(&b);
}

#endif
