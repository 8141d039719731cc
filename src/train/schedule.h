/* Learning-rate schedules: linear warmup, then cosine or linear decay to a
 * floor lr_min, or constant.
 *
 * For optimizer step s (0-based: the lr of the (s+1)-th update) of T steps,
 * with peak lr, floor lr_min and W = warmup_steps:
 *
 *   s < W:       lr * (s / max(1, W))                       (from 0, not from lr_min)
 *   otherwise:   progress p = (s - W) / max(1, T - W), clamped to [0, 1]
 *     cosine:    lr_min + (lr - lr_min) * 0.5 * (1 + cos(pi * p))
 *     linear:    lr_min + (lr - lr_min) * f,  f = (T - s) / max(1, T - W) = 1 - p
 *                (i.e. lr - (lr - lr_min) * p, written as transformers writes it)
 *     constant:  lr                                          (lr_min unused)
 *
 * The floor is lr_min: transformers' get_cosine_schedule_with_warmup and
 * get_linear_schedule_with_warmup decay to 0, the paper's recipe decays to a
 * floor, and we follow the recipe. With lr_min = 0 the formulas are
 * transformers' own, operation for operation (lr * factor; LambdaLR's lr before
 * update s+1 is factor(s)), so the values are equal; the constant schedule is
 * get_constant_schedule_with_warmup. The first step after warmup has lr (up to
 * one rounding of lr_min + (lr - lr_min)); s = T gives exactly lr_min, so the
 * last update (s = T-1) is just above it. Steps past T stay at lr_min; a
 * negative step counts as 0. warmup_steps = 0 starts at lr. */
#ifndef SRLM_SCHEDULE_H
#define SRLM_SCHEDULE_H

#include "io/config.h"

double srlm_lr_at(const srlm_train_config *c, long step, long total);

#endif
