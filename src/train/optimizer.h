/* AdamW and global-norm gradient clipping on fp32 buffers (host memory).
 *
 * srlm_adamw_step reproduces torch.optim.AdamW of torch 2.5.1 (foreach=False,
 * fused=False, amsgrad=False, maximize=False; _single_tensor_adamw in
 * torch/optim/adamw.py) operation by operation. Python floats are doubles;
 * tensor math is fp32, and a Python scalar meets a tensor as a float:
 *
 *   param  = param * (float)(1 - lr*wd)                (decoupled decay, only if decay)
 *   m      = fmaf((float)(1 - beta1), g - m, m)         (m.lerp_(g, 1 - beta1))
 *   v      = fmaf((float)(1 - beta2) * g, g, v * (float)beta2)
 *                                                      (v.mul_(beta2).addcmul_(g, g, 1 - beta2))
 *   bc1    = 1 - pow(beta1, t)         bc2 = 1 - pow(beta2, t)        (double, t 1-based)
 *   denom  = sqrtf(v) / (float)pow(bc2, 0.5) + (float)eps
 *   param  = param + ((float)(-(lr / bc1)) * m) / denom (param.addcdiv_(m, denom, -step_size))
 *
 * The two fmaf mirror torch's CPU kernels: lerp uses vec::fmadd explicitly and
 * addcmul's `self + s*t1*t2` is contracted to an FMA in torch's build (both
 * checked bit for bit against torch 2.5.1). The one remaining difference is
 * sqrt: torch's CPU sqrt (MKL VML) is off by one ulp for ~16% of inputs, while
 * sqrtf is correctly rounded, so params can differ from torch's by one ulp. */
#ifndef SRLM_OPTIMIZER_H
#define SRLM_OPTIMIZER_H

#include <stddef.h>

#include "backend/backend.h"
#include "io/config.h"

typedef struct {
    double lr, beta1, beta2, eps, weight_decay;
} srlm_adamw_hparams;

/* The hyperparameters of a training phase, with the lr of this step (from
 * srlm_lr_at). */
srlm_adamw_hparams srlm_adamw_hparams_make(const srlm_train_config *c, double lr);

/* The scalars of step t (1-based) for a tensor with (decay = 1) or without
 * weight decay, and the elementwise update itself: the backends' adamw op is
 * srlm_adamw_apply on the CPU (the CUDA kernel does the same operations). */
srlm_adamw_consts srlm_adamw_consts_make(const srlm_adamw_hparams *h, long t, int decay);
void srlm_adamw_apply(float *param, const float *grad, float *m, float *v, size_t n,
                      const srlm_adamw_consts *c);

/* One AdamW step on n contiguous fp32 values, in place. m and v start zeroed
 * before step t = 1; t counts the steps taken including this one. decay = 0
 * skips weight decay for this tensor (norm weights, by the caller's choice).
 * Elementwise only, so the result does not depend on the number of threads. */
void srlm_adamw_step(float *param, const float *grad, float *m, float *v, size_t n,
                     const srlm_adamw_hparams *h, long t, int decay);

/* Sum of x[i]^2 in double, in an order fixed by n alone (eight interleaved
 * partial sums added in a fixed order), so equal inputs give equal bits.
 * Used for the global gradient norm: sqrt of the sum over all tensors. */
double srlm_sum_squares(const float *x, size_t n);

/* Clipping factor as torch.nn.utils.clip_grad_norm_ computes it:
 * max_norm / (total_norm + 1e-6), clamped to <= 1 (torch does this in fp32; we
 * in double). 1.0 when max_norm <= 0 (clipping off). A NaN total_norm gives
 * NaN, so a caller checking the factor sees bad gradients; an infinite one
 * gives 0, as in torch. */
double srlm_clip_factor(double total_norm, double max_norm);

/* x *= s (the clipping itself: torch multiplies by the fp32 factor). */
void srlm_scale_f32(float *x, size_t n, float s);

#endif
