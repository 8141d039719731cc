/* Host-side helpers shared by the GPU tests (tests/gpu/test_*_gpu.c): the
 * no-GPU skip, device buffers to and from host fp32 arrays of any dtype, NaN
 * poison, random inputs and the error measures the tests compare with.
 * Copies are checked (a failed one fails the test); a failed allocation ends
 * the test at once, since nothing after it could run. */
#ifndef SRLM_TEST_GPU_UTIL_H
#define SRLM_TEST_GPU_UTIL_H

#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "backend/backend.h"
#include "core/dtype.h"
#include "core/rng.h"
#include "cuda_check.h"
#include "test.h"

/* Exit 77 (ctest: skipped) where there is no usable GPU; `note` is added to
 * the message ("" for none). */
static inline void gpu_skip_without_device(const char *note) {
    if (srlm_cuda_device_count() == 0) TEST_SKIP("no GPU on this machine%s", note);
}

/* ---- device buffers ---- */

/* At least one byte, so that an empty buffer is still a valid pointer. */
static inline void *gpu_alloc(size_t bytes) {
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        fprintf(stderr, "cudaMalloc of %zu bytes failed: %s\n", bytes, cudaGetErrorString(e));
        exit(1);
    }
    return p;
}

/* Every byte 0xff: NaN in fp32 and bf16 (-1 as int), so an output element a
 * kernel fails to write shows up in the comparison. */
static inline void *gpu_poisoned(size_t bytes) {
    void *p = gpu_alloc(bytes);
    CHECK(cudaMemset(p, 0xff, bytes ? bytes : 1) == cudaSuccess);
    return p;
}

static inline void *gpu_from_host(const void *h, size_t bytes) {
    void *d = gpu_alloc(bytes);
    CHECK(cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice) == cudaSuccess);
    return d;
}

/* n fp32 values -> a new device buffer of dtype t (core/dtype.h's conversion:
 * bf16 rounds to nearest even). */
static inline void *gpu_from_f32(const float *h, size_t n, srlm_dtype t) {
    size_t bytes = n * srlm_dtype_size(t);
    void *tmp = malloc(bytes ? bytes : 1);
    srlm_convert_from_f32(tmp, t, h, n);
    void *d = gpu_from_host(tmp, bytes);
    free(tmp);
    return d;
}

/* n elements of dtype t on the device -> fp32 at h (exact). */
static inline void gpu_to_f32(float *h, const void *d, size_t n, srlm_dtype t) {
    size_t bytes = n * srlm_dtype_size(t);
    void *tmp = malloc(bytes ? bytes : 1);
    CHECK(cudaMemcpy(tmp, d, bytes, cudaMemcpyDeviceToHost) == cudaSuccess);
    srlm_convert_to_f32(h, tmp, t, n);
    free(tmp);
}

/* The same into a new malloc'd array. */
static inline float *gpu_to_f32_new(const void *d, size_t n, srlm_dtype t) {
    float *h = malloc((n ? n : 1) * sizeof(float));
    gpu_to_f32(h, d, n, t);
    return h;
}

/* ---- host inputs ---- */

static inline float bf16_round(float x) { return srlm_bf16_to_f32(srlm_f32_to_bf16(x)); }

/* Values a dtype-t tensor can hold: rounded to bf16 for BF16, as they are for
 * F32. Both sides of a comparison then start from the same inputs. */
static inline void round_to_dtype(float *x, size_t n, srlm_dtype t) {
    if (t == SRLM_BF16)
        for (size_t i = 0; i < n; i++) x[i] = bf16_round(x[i]);
}

/* A new array of mean + sd * N(0, 1) from core/rng.h (element i from counter
 * i of `key`), rounded to dtype t. */
static inline float *random_f32(size_t n, uint64_t key, float mean, float sd, srlm_dtype t) {
    float *x = malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = mean + sd * (float)srlm_rng_normal(key, i);
    round_to_dtype(x, n, t);
    return x;
}

/* A KV cache (k and v: n floats in rows of stride ld, s->max_seq rows per
 * slot) for the batch s: the first n_past + n_new rows of each sequence's slot
 * are random, all ld columns (keys kkey and vkey, element i from counter i),
 * rounded to dtype t; every other element is NaN, so that a kernel reading a
 * row it must not shows. Returns the longest sequence (n_past + n_new). */
static inline int random_kv_cache(float *k, float *v, size_t n, const srlm_attn_shape *s, int64_t ld,
                                  uint64_t kkey, uint64_t vkey, srlm_dtype t) {
    for (size_t i = 0; i < n; i++) k[i] = v[i] = NAN;
    int max_len = 0;
    for (int b = 0; b < s->B; b++) {
        const int len = s->n_past[b] + s->n_new[b];
        if (len > max_len) max_len = len;
        for (int j = 0; j < len; j++)
            for (int64_t d = 0; d < ld; d++) {
                const size_t i = (size_t)(((int64_t)s->slot[b] * s->max_seq + j) * ld + d);
                k[i] = (float)srlm_rng_normal(kkey, i);
                v[i] = (float)srlm_rng_normal(vkey, i);
                if (t == SRLM_BF16) { k[i] = bf16_round(k[i]); v[i] = bf16_round(v[i]); }
            }
    }
    return max_len;
}

/* ---- comparisons, over the rows x cols part of row-major arrays with row
 * stride `stride` (the padding is not compared) ---- */

/* Elements whose bits differ (exact ops; NaN poison left behind counts). */
static inline int count_bit_diffs(const float *got, const float *ref, int64_t rows, int64_t cols,
                                  int64_t stride) {
    int bad = 0;
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++)
            bad += memcmp(&got[i * stride + j], &ref[i * stride + j], sizeof(float)) != 0;
    return bad;
}

/* Relative error in the 2-norm, |got - ref| / |ref|, summed in double over the
 * rows listed in row_ids (NULL: rows 0 .. rows-1); the absolute error where
 * ref is all zero. A NaN anywhere in got makes it NaN, which fails any
 * `<= tolerance` check. */
static inline double rel_err_rows(const float *got, const float *ref, const int64_t *row_ids, int64_t rows,
                                  int64_t cols, int64_t stride) {
    double num = 0, den = 0;
    for (int64_t r = 0; r < rows; r++) {
        const int64_t i = row_ids ? row_ids[r] : r;
        for (int64_t j = 0; j < cols; j++) {
            const double d = (double)got[i * stride + j] - ref[i * stride + j];
            num += d * d;
            den += (double)ref[i * stride + j] * ref[i * stride + j];
        }
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* The largest error of one row (2-norm over its cols) relative to the RMS row
 * norm of ref: a mistake confined to a few rows, which the whole-tensor error
 * above dilutes, shows here at its own size; rows of small norm (whose own
 * relative error can be large from rounding alone) do not blow it up. */
static inline double row_err_max(const float *got, const float *ref, const int64_t *row_ids, int64_t rows,
                                 int64_t cols, int64_t stride) {
    double worst = 0, den = 0;
    for (int64_t r = 0; r < rows; r++) {
        const int64_t i = row_ids ? row_ids[r] : r;
        double num = 0;
        for (int64_t j = 0; j < cols; j++) {
            const double d = (double)got[i * stride + j] - ref[i * stride + j];
            num += d * d;
            den += (double)ref[i * stride + j] * ref[i * stride + j];
        }
        if (!(num <= worst)) worst = isnan(num) ? INFINITY : num;
    }
    den /= rows > 0 ? (double)rows : 1.0;
    return den > 0 ? sqrt(worst / den) : sqrt(worst);
}

static inline double rel_err(const float *got, const float *ref, int64_t rows, int64_t cols, int64_t stride) {
    return rel_err_rows(got, ref, NULL, rows, cols, stride);
}

#endif
