/* The CUDA backend's optimizer ops: AdamW on fp32 master weights, the sum of
 * squares of the gradient norm and the clipping scale (kernels/adamw.cu; the
 * CPU twins are in src/train/optimizer.c). */
#include <string.h>

#include "adamw.h"
#include "backend/cuda/cuda_internal.h"

/* A contiguous fp32 view with as many elements as `like` (when given). */
static srlm_status check_flat(const char *op, const char *name, const srlm_view *v, const srlm_view *like) {
    if (v->dtype != SRLM_F32)
        return SRLM_ERR(SRLM_BAD_INPUT, "cuda backend: %s: %s is %s; the optimizer works on F32", op, name,
                        srlm_dtype_name(v->dtype));
    if (v->stride != v->cols)
        return SRLM_ERR(SRLM_BAD_INPUT, "cuda backend: %s: %s must be contiguous", op, name);
    if (like && v->rows * v->cols != like->rows * like->cols)
        return SRLM_ERR(SRLM_BAD_INPUT, "cuda backend: %s: %s has %lld elements, param %lld", op, name,
                        (long long)(v->rows * v->cols), (long long)(like->rows * like->cols));
    return SRLM_OK;
}

srlm_status cuda_adamw(srlm_backend *be, srlm_view *param, const srlm_view *grad, srlm_view *m, srlm_view *v,
                       srlm_view *work, const srlm_adamw_consts *c) {
    SRLM_CHECK(check_flat("adamw", "param", param, NULL));
    SRLM_CHECK(check_flat("adamw", "grad", grad, param));
    SRLM_CHECK(check_flat("adamw", "m", m, param));
    SRLM_CHECK(check_flat("adamw", "v", v, param));
    if (work && work->dtype != SRLM_F32 && work->dtype != SRLM_BF16)
        return SRLM_ERR(SRLM_BAD_INPUT, "cuda backend: adamw: work is %s; the working weights are F32 or BF16",
                        srlm_dtype_name(work->dtype));
    if (work && (work->stride != work->cols || work->rows * work->cols != param->rows * param->cols))
        return SRLM_ERR(SRLM_BAD_INPUT, "cuda backend: adamw: work must be contiguous and as large as param");
    const size_t n = (size_t)(param->rows * param->cols);
    if (n == 0) return SRLM_OK;
    const srlm_cuda_adamw_args a = {
        .one_minus_lr_wd = c->decay_mul,
        .one_minus_beta1 = c->w1,
        .one_minus_beta2 = c->w2,
        .beta2 = c->b2,
        .sqrt_bc2 = c->bc2_sqrt,
        .eps = c->eps,
        .neg_step_size = c->neg_step_size,
    };
    /* the working copy rounded from each updated value while it is in a
     * register: no second pass over the master */
    return srlm_cuda_adamw_step(param->data, grad->data, m->data, v->data, n, &a, work ? work->data : NULL,
                                work ? work->dtype : SRLM_F32, cuda_stream(be));
}

srlm_status cuda_sum_squares(srlm_backend *be, const srlm_view *x, double *out) {
    SRLM_CHECK(check_flat("sum_squares", "x", x, NULL));
    const size_t n = (size_t)(x->rows * x->cols);
    *out = 0;
    if (n == 0) return SRLM_OK;
    void *dev[1], *ws;
    SRLM_CHECK(cuda_stage(be, NULL, 0, sizeof(double), dev));
    SRLM_CHECK(cuda_workspace(be, srlm_cuda_sum_squares_workspace(n), &ws));
    SRLM_CHECK(srlm_cuda_sum_squares(x->data, n, dev[0], ws, cuda_stream(be)));
    const void *host;
    SRLM_CHECK(cuda_fetch(be, dev[0], sizeof(double), &host));
    memcpy(out, host, sizeof(double));
    return SRLM_OK;
}

srlm_status cuda_scale(srlm_backend *be, srlm_view *x, float s) {
    SRLM_CHECK(check_flat("scale", "x", x, NULL));
    const size_t n = (size_t)(x->rows * x->cols);
    if (n == 0) return SRLM_OK;
    return srlm_cuda_scale_f32(x->data, n, s, cuda_stream(be));
}
