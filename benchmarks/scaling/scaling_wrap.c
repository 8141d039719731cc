/* Timing wrappers for scaling_train, linked with
 *   -Wl,--wrap=srlm_llama_train_forward,--wrap=srlm_llama_train_backward,--wrap=srlm_adamw_step,
 *   --wrap=srlm_comm_allreduce,--wrap=srlm_comm_allreduce_f32,--wrap=srlm_comm_reduce_scatter_f32,
 *   --wrap=srlm_comm_allgather_f32,--wrap=srlm_comm_broadcast,--wrap=srlm_comm_barrier
 * (benchmarks/CMakeLists.txt): the linker sends every call between srlmlib's
 * object files (the trainer's calls into the model, the optimizer and the
 * collectives) to __wrap_NAME, which times __real_NAME. GNU ld and lld. */
#include "dist/comm.h"
#include "model/llama_train.h"
#include "scaling_common.h"
#include "train/optimizer.h"

srlm_status __real_srlm_llama_train_forward(srlm_llama *m, srlm_train_acts *a, const srlm_train_batch *b, float *logp);
srlm_status __real_srlm_llama_train_backward(srlm_llama *m, srlm_train_acts *a, const srlm_train_batch *b,
                                             const float *dlogp, srlm_llama_grads *g, int accumulate);
void        __real_srlm_adamw_step(float *param, const float *grad, float *m, float *v, size_t n,
                                   const srlm_adamw_hparams *h, long t, int decay);
srlm_status __real_srlm_comm_allreduce(srlm_comm *c, void *buf, size_t n, srlm_comm_dtype t, srlm_reduce_op op);
srlm_status __real_srlm_comm_allreduce_f32(srlm_comm *c, float *buf, size_t n, srlm_reduce_op op);
srlm_status __real_srlm_comm_reduce_scatter_f32(srlm_comm *c, const float *send, float *recv, size_t n_per_rank);
srlm_status __real_srlm_comm_allgather_f32(srlm_comm *c, const float *send, float *recv, size_t n_per_rank);
srlm_status __real_srlm_comm_broadcast(srlm_comm *c, void *buf, size_t bytes, int root);
srlm_status __real_srlm_comm_barrier(srlm_comm *c);

srlm_status __wrap_srlm_llama_train_forward(srlm_llama *m, srlm_train_acts *a, const srlm_train_batch *b, float *logp);
srlm_status __wrap_srlm_llama_train_backward(srlm_llama *m, srlm_train_acts *a, const srlm_train_batch *b,
                                             const float *dlogp, srlm_llama_grads *g, int accumulate);
void        __wrap_srlm_adamw_step(float *param, const float *grad, float *m, float *v, size_t n,
                                   const srlm_adamw_hparams *h, long t, int decay);
srlm_status __wrap_srlm_comm_allreduce(srlm_comm *c, void *buf, size_t n, srlm_comm_dtype t, srlm_reduce_op op);
srlm_status __wrap_srlm_comm_allreduce_f32(srlm_comm *c, float *buf, size_t n, srlm_reduce_op op);
srlm_status __wrap_srlm_comm_reduce_scatter_f32(srlm_comm *c, const float *send, float *recv, size_t n_per_rank);
srlm_status __wrap_srlm_comm_allgather_f32(srlm_comm *c, const float *send, float *recv, size_t n_per_rank);
srlm_status __wrap_srlm_comm_broadcast(srlm_comm *c, void *buf, size_t bytes, int root);
srlm_status __wrap_srlm_comm_barrier(srlm_comm *c);

srlm_status __wrap_srlm_llama_train_forward(srlm_llama *m, srlm_train_acts *a, const srlm_train_batch *b, float *logp) {
    double t0 = scaling_now();
    srlm_status st = __real_srlm_llama_train_forward(m, a, b, logp);
    scaling_log_record(t0, EV_FWD, 0, 0);
    return st;
}

srlm_status __wrap_srlm_llama_train_backward(srlm_llama *m, srlm_train_acts *a, const srlm_train_batch *b,
                                             const float *dlogp, srlm_llama_grads *g, int accumulate) {
    double t0 = scaling_now();
    srlm_status st = __real_srlm_llama_train_backward(m, a, b, dlogp, g, accumulate);
    scaling_log_record(t0, EV_BWD, 0, 0);
    return st;
}

void __wrap_srlm_adamw_step(float *param, const float *grad, float *m, float *v, size_t n,
                            const srlm_adamw_hparams *h, long t, int decay) {
    double t0 = scaling_now();
    __real_srlm_adamw_step(param, grad, m, v, n, h, t, decay);
    scaling_log_record(t0, EV_ADAMW, (int64_t)n * 4, 0);
}

srlm_status __wrap_srlm_comm_allreduce(srlm_comm *c, void *buf, size_t n, srlm_comm_dtype t, srlm_reduce_op op) {
    double t0 = scaling_now();
    srlm_status st = __real_srlm_comm_allreduce(c, buf, n, t, op);
    scaling_log_record(t0, EV_ALLREDUCE, (int64_t)(n * srlm_comm_dtype_size(t)),
                       n == 1 && t == SRLM_COMM_I32 && op == SRLM_REDUCE_MAX);
    return st;
}

srlm_status __wrap_srlm_comm_allreduce_f32(srlm_comm *c, float *buf, size_t n, srlm_reduce_op op) {
    double t0 = scaling_now();
    srlm_status st = __real_srlm_comm_allreduce_f32(c, buf, n, op);
    scaling_log_record(t0, EV_ALLREDUCE, (int64_t)n * 4, 0);
    return st;
}

srlm_status __wrap_srlm_comm_reduce_scatter_f32(srlm_comm *c, const float *send, float *recv, size_t n_per_rank) {
    double t0 = scaling_now();
    srlm_status st = __real_srlm_comm_reduce_scatter_f32(c, send, recv, n_per_rank);
    scaling_log_record(t0, EV_REDUCE_SCATTER, (int64_t)n_per_rank * 4 * srlm_comm_size(c), 0);
    return st;
}

srlm_status __wrap_srlm_comm_allgather_f32(srlm_comm *c, const float *send, float *recv, size_t n_per_rank) {
    double t0 = scaling_now();
    srlm_status st = __real_srlm_comm_allgather_f32(c, send, recv, n_per_rank);
    scaling_log_record(t0, EV_ALLGATHER, (int64_t)n_per_rank * 4 * srlm_comm_size(c), 0);
    return st;
}

srlm_status __wrap_srlm_comm_broadcast(srlm_comm *c, void *buf, size_t bytes, int root) {
    double t0 = scaling_now();
    srlm_status st = __real_srlm_comm_broadcast(c, buf, bytes, root);
    scaling_log_record(t0, EV_BCAST, (int64_t)bytes, 0);
    return st;
}

srlm_status __wrap_srlm_comm_barrier(srlm_comm *c) {
    double t0 = scaling_now();
    srlm_status st = __real_srlm_comm_barrier(c);
    scaling_log_record(t0, EV_BARRIER, 0, 0);
    return st;
}
