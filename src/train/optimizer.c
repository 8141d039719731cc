/* AdamW, mirroring torch.optim.AdamW (torch 2.5.1) bit for bit except for
 * sqrt; see optimizer.h for the operation order and why. */
#include "train/optimizer.h"

#include <math.h>

srlm_adamw_hparams srlm_adamw_hparams_make(const srlm_train_config *c, double lr) {
    srlm_adamw_hparams h = {
        .lr = lr,
        .beta1 = c->adam_beta1,
        .beta2 = c->adam_beta2,
        .eps = c->adam_eps,
        .weight_decay = c->weight_decay,
    };
    return h;
}

srlm_adamw_consts srlm_adamw_consts_make(const srlm_adamw_hparams *h, long t, int decay) {
    /* Scalars as torch computes them: in double (Python floats), then rounded
     * to float where they meet an fp32 tensor. */
    const double step = (double)t;                 /* torch: state["step"].item() */
    const double bc1 = 1.0 - pow(h->beta1, step);
    const double bc2 = 1.0 - pow(h->beta2, step);
    srlm_adamw_consts c = {
        /* p * 1.0f is p exactly: no decay is a multiplication by one */
        .decay_mul = decay ? (float)(1.0 - h->lr * h->weight_decay) : 1.0f,
        .w1 = (float)(1.0 - h->beta1),
        .w2 = (float)(1.0 - h->beta2),
        .b2 = (float)h->beta2,
        .bc2_sqrt = (float)pow(bc2, 0.5),          /* Python: bias_correction2 ** 0.5 */
        .eps = (float)h->eps,
        .neg_step_size = (float)(-(h->lr / bc1)),
    };
    return c;
}

void srlm_adamw_apply(float *param, const float *grad, float *m, float *v, size_t n,
                      const srlm_adamw_consts *c) {
    const float decay_mul = c->decay_mul, w1 = c->w1, w2 = c->w2, b2 = c->b2;
    const float bc2_sqrt = c->bc2_sqrt, eps = c->eps, neg_step_size = c->neg_step_size;
    const long long count = (long long)n;

#pragma omp parallel for schedule(static) if (count > (1 << 16))
    for (long long i = 0; i < count; i++) {
        const float p = param[i] * decay_mul;
        const float g = grad[i];
        const float mi = fmaf(w1, g - m[i], m[i]);
        const float vi = fmaf(w2 * g, g, v[i] * b2);
        const float denom = sqrtf(vi) / bc2_sqrt + eps;
        param[i] = p + (neg_step_size * mi) / denom;
        m[i] = mi;
        v[i] = vi;
    }
}

void srlm_adamw_step(float *param, const float *grad, float *m, float *v, size_t n,
                     const srlm_adamw_hparams *h, long t, int decay) {
    const srlm_adamw_consts c = srlm_adamw_consts_make(h, t, decay);
    srlm_adamw_apply(param, grad, m, v, n, &c);
}

double srlm_sum_squares(const float *x, size_t n) {
    /* Eight independent partial sums: the order is fixed by n, and the
     * compiler may keep them in vector registers without reassociating. */
    double acc[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) acc[k] += (double)x[i + k] * (double)x[i + k];
    for (int k = 0; i < n; i++, k++) acc[k] += (double)x[i] * (double)x[i];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

double srlm_clip_factor(double total_norm, double max_norm) {
    if (!(max_norm > 0)) return 1.0;
    if (isnan(total_norm)) return total_norm;
    double c = max_norm / (total_norm + 1e-6);
    return c < 1.0 ? c : 1.0;
}

void srlm_scale_f32(float *x, size_t n, float s) {
    const long long count = (long long)n;
#pragma omp parallel for schedule(static) if (count > (1 << 16))
    for (long long i = 0; i < count; i++) x[i] *= s;
}
