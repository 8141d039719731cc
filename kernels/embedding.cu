/* Token embedding on the GPU. Forward: one block per output row, a plain copy
 * of the table row (or zeros for an id outside this rank's vocab shard).
 * Backward: one block per table row that received gradients, the host having
 * grouped the token rows by table row (srlm_cuda_embedding_backward in
 * embedding.h); each thread owns columns and adds that group's dx rows in
 * increasing token order, as the CPU twin does: no atomics, and the fp32 sums
 * are bit-identical to cpu_embedding_backward's. */
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <limits.h>
#include <stdint.h>

#include "cuda_check.h"
#include "dtype_io.cuh"
#include "embedding.h"

using namespace dtype_io;

namespace {

constexpr int kThreads = 256;

/* Same dtype both sides: the bits are copied, no conversion. */
template <typename T>
__global__ void embedding_kernel(T *out, int64_t os, const T *table, int64_t ts, int64_t table_rows,
                                 const int *ids, int64_t vocab_start, int cols) {
    const int64_t r = (int64_t)ids[blockIdx.x] - vocab_start;
    T *o = out + (int64_t)blockIdx.x * os;
    if (r >= 0 && r < table_rows) {
        const T *src = table + r * ts;
        for (int j = threadIdx.x; j < cols; j += kThreads) o[j] = src[j];
    } else {
        for (int j = threadIdx.x; j < cols; j += kThreads) o[j] = T(0.0f);
    }
}

/* Block g: dtable row table_row[g] += dx rows rows[start[g] .. start[g+1]), in
 * that order, summed in fp32 from the table's current value. Bad indices (a
 * caller bug) are skipped rather than written out of bounds. */
template <typename Tt, typename Tx>
__global__ void embedding_backward_kernel(Tt *dtable, int64_t ts, int64_t table_rows, const Tx *dx,
                                          int64_t xs, int64_t dx_rows, const int *rows,
                                          const int *start, const int *table_row, int cols) {
    const int r = table_row[blockIdx.x];
    if (r < 0 || r >= table_rows) return;
    const int k0 = start[blockIdx.x], k1 = start[blockIdx.x + 1];
    Tt *d = dtable + (int64_t)r * ts;
    for (int j = threadIdx.x; j < cols; j += kThreads) {
        float acc = ld(d[j]);
        for (int k = k0; k < k1; k++) {
            const int i = rows[k];
            if (i >= 0 && i < dx_rows) acc += ld(dx[(int64_t)i * xs + j]);
        }
        st(d + j, acc);
    }
}

srlm_status check_view(const srlm_view *v, const char *op, const char *name) {
    if (v->dtype != SRLM_F32 && v->dtype != SRLM_BF16)
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: %s dtype %s, expected F32 or BF16", op, name,
                        srlm_dtype_name(v->dtype));
    if (v->rows < 0 || v->cols < 0 || v->cols > INT_MAX || v->stride < v->cols)
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: %s is (%lld, %lld) stride %lld, expected a shape with at "
                        "most %d columns and stride >= cols", op, name, (long long)v->rows,
                        (long long)v->cols, (long long)v->stride, INT_MAX);
    return SRLM_OK;
}

}  // namespace

extern "C" srlm_status srlm_cuda_embedding(srlm_view *out, const srlm_view *table, const int *ids,
                                           int n, int64_t vocab_start, void *stream) {
    SRLM_CHECK(check_view(out, "embedding", "out"));
    SRLM_CHECK(check_view(table, "embedding", "table"));
    if (out->dtype != table->dtype)
        return SRLM_ERR(SRLM_BAD_INPUT, "embedding: out dtype %s, expected %s (the table's)",
                        srlm_dtype_name(out->dtype), srlm_dtype_name(table->dtype));
    if (out->cols != table->cols)
        return SRLM_ERR(SRLM_BAD_INPUT, "embedding: out has %lld columns, expected %lld (the table's)",
                        (long long)out->cols, (long long)table->cols);
    if (n < 0 || n > out->rows)
        return SRLM_ERR(SRLM_BAD_INPUT, "embedding: %d ids, expected 0 .. %lld (out's rows)", n,
                        (long long)out->rows);
    if (n == 0 || out->cols == 0) return SRLM_OK;
    cudaStream_t st = (cudaStream_t)stream;
    if (out->dtype == SRLM_F32)
        embedding_kernel<float><<<n, kThreads, 0, st>>>((float *)out->data, out->stride,
                                                        (const float *)table->data, table->stride,
                                                        table->rows, ids, vocab_start, (int)out->cols);
    else
        embedding_kernel<__nv_bfloat16><<<n, kThreads, 0, st>>>(
            (__nv_bfloat16 *)out->data, out->stride, (const __nv_bfloat16 *)table->data,
            table->stride, table->rows, ids, vocab_start, (int)out->cols);
    SRLM_CUDA_TRY(cudaGetLastError());
    return SRLM_OK;
}

template <typename Tt, typename Tx>
static void launch_backward(srlm_view *dtable, const srlm_view *dx, const int *rows,
                            const int *start, const int *table_row, int n_groups, cudaStream_t st) {
    embedding_backward_kernel<Tt, Tx><<<n_groups, kThreads, 0, st>>>(
        (Tt *)dtable->data, dtable->stride, dtable->rows, (const Tx *)dx->data, dx->stride, dx->rows,
        rows, start, table_row, (int)dx->cols);
}

/* dtable and dx may differ in dtype (e.g. fp32 gradients of a bf16 model). */
extern "C" srlm_status srlm_cuda_embedding_backward(srlm_view *dtable, const srlm_view *dx,
                                                    const int *rows, const int *start,
                                                    const int *table_row, int n_groups,
                                                    void *stream) {
    SRLM_CHECK(check_view(dtable, "embedding_backward", "dtable"));
    SRLM_CHECK(check_view(dx, "embedding_backward", "dx"));
    if (dx->cols != dtable->cols)
        return SRLM_ERR(SRLM_BAD_INPUT, "embedding_backward: dx has %lld columns, expected %lld "
                        "(dtable's)", (long long)dx->cols, (long long)dtable->cols);
    if (n_groups < 0)
        return SRLM_ERR(SRLM_BAD_INPUT, "embedding_backward: %d groups, expected >= 0", n_groups);
    if (n_groups == 0 || dx->cols == 0) return SRLM_OK;
    cudaStream_t st = (cudaStream_t)stream;
    const bool tf = dtable->dtype == SRLM_F32, xf = dx->dtype == SRLM_F32;
    if (tf && xf) launch_backward<float, float>(dtable, dx, rows, start, table_row, n_groups, st);
    else if (tf) launch_backward<float, __nv_bfloat16>(dtable, dx, rows, start, table_row, n_groups, st);
    else if (xf) launch_backward<__nv_bfloat16, float>(dtable, dx, rows, start, table_row, n_groups, st);
    else launch_backward<__nv_bfloat16, __nv_bfloat16>(dtable, dx, rows, start, table_row, n_groups, st);
    SRLM_CUDA_TRY(cudaGetLastError());
    return SRLM_OK;
}
