/* Learning-rate schedules; formulas and the transformers correspondence in
 * schedule.h. */
#include "train/schedule.h"

#include <math.h>

/* math.pi; M_PI is not ISO C. transformers computes
 * pi * num_cycles * 2.0 * progress with num_cycles = 0.5, which is exactly
 * pi * progress (scaling by 0.5 and 2.0 is exact). */
static const double srlm_pi = 3.14159265358979323846;

static long max1(long x) { return x > 1 ? x : 1; }

double srlm_lr_at(const srlm_train_config *c, long step, long total) {
    const double lr = c->lr, lr_min = c->lr_min;
    const long warmup = c->warmup_steps > 0 ? c->warmup_steps : 0;
    if (step < 0) step = 0;
    if (step < warmup) return lr * ((double)step / (double)max1(warmup));

    const double span = (double)max1(total - warmup);
    double factor;
    switch (c->schedule) {
    case SRLM_SCHEDULE_COSINE: {
        double progress = (double)(step - warmup) / span;
        if (progress > 1.0) progress = 1.0;
        factor = 0.5 * (1.0 + cos(srlm_pi * progress));
        break;
    }
    case SRLM_SCHEDULE_LINEAR:
        factor = (double)(total - step) / span;
        if (factor < 0.0) factor = 0.0;
        if (factor > 1.0) factor = 1.0;
        break;
    case SRLM_SCHEDULE_CONSTANT:
    default:
        return lr;
    }
    return lr_min + (lr - lr_min) * factor;
}
