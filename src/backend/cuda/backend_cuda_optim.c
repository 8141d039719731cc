/* The CUDA backend's optimizer ops: AdamW on fp32 master weights, the sum of
 * squares of the gradient norm and the clipping scale (kernels/adamw.cu; the
 * CPU twins are in src/train/optimizer.c). */
#include <stdio.h>
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

/* One reduction kernel per view, each writing its own double, all queued on
 * the stream (they share the workspace in stream order) and fetched by one
 * transfer: one wait per call instead of one per tensor (~200 per step of a
 * 1B model). */
srlm_status cuda_sum_squares(srlm_backend *be, const srlm_view *xs, int n, double *out) {
    if (n < 0 || (n > 0 && (!xs || !out)))
        return SRLM_ERR(SRLM_BAD_INPUT, "cuda backend: sum_squares: %d views%s; expected a count >= 0 and, above 0, the "
                        "views and room for their results", n, n > 0 ? " and no array" : "");
    size_t ws_bytes = 0;
    int launched = 0;
    for (int i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "xs[%d]", i);
        SRLM_CHECK(check_flat("sum_squares", name, &xs[i], NULL));
        const size_t len = (size_t)(xs[i].rows * xs[i].cols);
        const size_t need = len ? srlm_cuda_sum_squares_workspace(len) : 0;
        if (need > ws_bytes) ws_bytes = need;
        launched += len > 0;
    }
    for (int i = 0; i < n; i++) out[i] = 0;
    if (!launched) return SRLM_OK;
    void *dev[1], *ws;
    /* the workspace first: growing it waits for the stream, which must not
     * happen between the launches that share it */
    SRLM_CHECK(cuda_workspace(be, ws_bytes, &ws));
    SRLM_CHECK(cuda_stage(be, NULL, 0, sizeof(double) * (size_t)n, dev));
    double *res = dev[0];
    for (int i = 0; i < n; i++) {
        const size_t len = (size_t)(xs[i].rows * xs[i].cols);
        if (len) SRLM_CHECK(srlm_cuda_sum_squares(xs[i].data, len, res + i, ws, cuda_stream(be)));
    }
    const void *host;
    SRLM_CHECK(cuda_fetch(be, res, sizeof(double) * (size_t)n, &host));
    for (int i = 0; i < n; i++)
        if (xs[i].rows * xs[i].cols > 0) memcpy(&out[i], (const double *)host + i, sizeof(double));
    return SRLM_OK;
}

srlm_status cuda_scale(srlm_backend *be, srlm_view *x, float s) {
    SRLM_CHECK(check_flat("scale", "x", x, NULL));
    const size_t n = (size_t)(x->rows * x->cols);
    if (n == 0) return SRLM_OK;
    return srlm_cuda_scale_f32(x->data, n, s, cuda_stream(be));
}
