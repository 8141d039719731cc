/* AdamW with fp32 master weights, the global gradient norm and its clipping, on
 * the GPU. CPU twins: srlm_adamw_step, srlm_sum_squares and srlm_scale_f32 in
 * src/train/optimizer.c. AdamW and scale do the CPU's operations in its order
 * (fmaf where it uses fmaf): bit-identical. The sum of squares adds in another
 * fixed order (the CPU keeps eight running sums), so the two agree to rounding,
 * and a CUDA run's gradient norm, clip factor and hence weights may differ from
 * a CPU run's in the last bits. */
#ifndef SRLM_KERNEL_ADAMW_H
#define SRLM_KERNEL_ADAMW_H

#include <stddef.h>

#include "core/dtype.h"
#include "core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One AdamW step on n values, in place, as srlm_adamw_step (optimizer.h) with
 * the same hyperparameters: master (fp32), m, v (fp32), grad (fp32). When
 * param is not NULL it gets the updated master rounded to param_dtype (BF16 or
 * F32): the model's working copy. bias corrections and step size are computed
 * on the host in double exactly as the CPU twin does and passed in. */
typedef struct {
    float one_minus_lr_wd;  /* (float)(1 - lr*wd), or 1 when no decay */
    float one_minus_beta1;  /* (float)(1 - beta1) */
    float one_minus_beta2;  /* (float)(1 - beta2) */
    float beta2;            /* (float)beta2 */
    float sqrt_bc2;         /* (float)pow(1 - beta2^t, 0.5) */
    float eps;              /* (float)eps */
    float neg_step_size;    /* (float)(-(lr / (1 - beta1^t))) */
} srlm_cuda_adamw_args;

srlm_status srlm_cuda_adamw_step(float *master, const float *grad, float *m, float *v, size_t n,
                                 const srlm_cuda_adamw_args *a, void *param, srlm_dtype param_dtype,
                                 void *stream);

/* Sum of x[i]^2 over n fp32 values, in double, in an order fixed by n alone
 * (fixed-size chunks per block, a fixed tree in each; a second kernel's threads
 * each add a strided subset of the block partials in order, then a fixed
 * tree): equal inputs give equal bits. *out is a device double. workspace:
 * srlm_cuda_sum_squares_workspace(n) bytes. */
size_t srlm_cuda_sum_squares_workspace(size_t n);
srlm_status srlm_cuda_sum_squares(const float *x, size_t n, double *out, void *workspace, void *stream);

/* x *= s */
srlm_status srlm_cuda_scale_f32(float *x, size_t n, float s, void *stream);

#ifdef __cplusplus
}
#endif

#endif
