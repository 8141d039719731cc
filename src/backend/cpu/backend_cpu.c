/* The CPU backend: the reference implementation of the ops table. The ops
 * here are fp32 only; the table (backend_cpu_bf16.c) sends F32 views straight
 * to them and BF16 views through fp32 copies. GEMMs go to OpenBLAS (those of
 * a few rows to the skinny kernel, matmul_skinny.c); elementwise and attention
 * loops use OpenMP. */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "backend/cpu/cpu_internal.h"
#include "backend/cpu/matmul_skinny.h"
#include "train/optimizer.h"

static srlm_status need_f32(const srlm_view *v, const char *op) {
    if (v->dtype != SRLM_F32)
        return SRLM_ERR(SRLM_FAILED, "cpu backend: %s expects fp32, got %s", op,
                        srlm_dtype_name(v->dtype));
    return SRLM_OK;
}

srlm_status cpu_alloc(srlm_backend *be, srlm_view *v, srlm_dtype dtype, int64_t rows,
                             int64_t cols, const char *what) {
    (void)be;
    if (dtype != SRLM_F32 && dtype != SRLM_BF16)
        return SRLM_ERR(SRLM_BAD_INPUT, "cpu backend: cannot allocate %s as %s: only F32 and BF16", what,
                        srlm_dtype_name(dtype));
    size_t bytes = (size_t)rows * (size_t)cols * srlm_dtype_size(dtype);
    if (rows < 0 || cols < 0 || (cols && (size_t)rows > SIZE_MAX / (size_t)cols / 4))
        return SRLM_ERR(SRLM_FAILED, "cpu backend: size overflow allocating %s", what);
    /* 64-byte alignment for AVX-512 loads; never zero bytes so free() is uniform */
    size_t rounded = (bytes + 63) / 64 * 64;
    void *p = aligned_alloc(64, rounded ? rounded : 64);
    if (!p)
        return SRLM_ERR(SRLM_FAILED, "out of memory allocating %s (%.1f MiB)", what,
                        bytes / 1048576.0);
    memset(p, 0, rounded ? rounded : 64);
    *v = (srlm_view){p, dtype, rows, cols, cols};
    return SRLM_OK;
}

void cpu_free(srlm_backend *be, srlm_view *v) {
    (void)be;
    free(v->data);
    v->data = NULL;
}

srlm_status cpu_upload(srlm_backend *be, srlm_view *dst, const float *src) {
    (void)be;
    SRLM_CHECK(need_f32(dst, "upload"));
    for (int64_t i = 0; i < dst->rows; i++)
        memcpy(ROW(dst, i), src + i * dst->cols, (size_t)dst->cols * 4);
    return SRLM_OK;
}

srlm_status cpu_download(srlm_backend *be, float *dst, const srlm_view *src) {
    (void)be;
    SRLM_CHECK(need_f32(src, "download"));
    for (int64_t i = 0; i < src->rows; i++)
        memcpy(dst + i * src->cols, ROW(src, i), (size_t)src->cols * 4);
    return SRLM_OK;
}

srlm_status cpu_fill(srlm_backend *be, srlm_view *v, float value) {
    (void)be;
    SRLM_CHECK(need_f32(v, "fill"));
    for (int64_t i = 0; i < v->rows; i++) {
        float *r = ROW(v, i);
        for (int64_t j = 0; j < v->cols; j++) r[j] = value;
    }
    return SRLM_OK;
}

/* For one row, and up to this many without the skinny kernel (a CPU without
 * AVX2/FMA), one sgemv per row beats one sgemm call: OpenBLAS's sgemm packs W
 * on every call, which a few rows cannot repay. Measured with
 * benchmarks/bench_cpu_matmul, W coming from memory (RESULTS.md): at 1 and 2
 * threads one row is 1.8-4x faster, 2-3 rows 0.9-2.9x (the 24M model's LM head
 * about even); at 4 rows sgemm's 4-row tile wins on large weights at one thread. */
enum { SGEMV_MAX_ROWS = 3 };

srlm_status cpu_matmul(srlm_backend *be, srlm_view *y, const srlm_view *x,
                              const srlm_view *w, int accumulate) {
    (void)be;
    SRLM_CHECK(need_f32(y, "matmul"));
    if (x->cols != w->cols || y->rows != x->rows || y->cols != w->rows)
        return SRLM_ERR(SRLM_FAILED, "matmul shapes: y (%lld,%lld) = x (%lld,%lld) W^T, W (%lld,%lld)",
                        (long long)y->rows, (long long)y->cols, (long long)x->rows,
                        (long long)x->cols, (long long)w->rows, (long long)w->cols);
    if (x->rows == 0) return SRLM_OK;
    if (x->rows >= SKINNY_MIN_ROWS && x->rows <= SKINNY_MAX_ROWS && srlm_skinny_usable()) {
        /* decode steps of a few sequences: W read once */
        srlm_skinny_matmul(y->data, (size_t)y->stride, x->data, (size_t)x->stride, w->data, (size_t)w->stride,
                           (int)x->rows, w->rows, w->cols, accumulate);
        return SRLM_OK;
    }
    if (x->rows <= SGEMV_MAX_ROWS) {
        for (int64_t r = 0; r < x->rows; r++) {
            float *yr = ROW(y, r);
            /* zeroed first: some OpenBLAS releases scale y by beta = 0 and keep a stale NaN there */
            if (!accumulate) memset(yr, 0, sizeof(float) * (size_t)y->cols);
            cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)w->rows, (int)w->cols, 1.0f, w->data, (int)w->stride,
                        ROW(x, r), 1, accumulate ? 1.0f : 0.0f, yr, 1);
        }
        return SRLM_OK;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)x->rows, (int)w->rows, (int)x->cols,
                1.0f, x->data, (int)x->stride, w->data, (int)w->stride, accumulate ? 1.0f : 0.0f,
                y->data, (int)y->stride);
    return SRLM_OK;
}

srlm_status cpu_embedding(srlm_backend *be, srlm_view *out, const srlm_view *table,
                                 const int *ids, int n, int64_t vocab_start) {
    (void)be;
    for (int i = 0; i < n; i++) {
        int64_t r = (int64_t)ids[i] - vocab_start;
        if (r >= 0 && r < table->rows)
            memcpy(ROW(out, i), ROW(table, r), (size_t)out->cols * 4);
        else
            memset(ROW(out, i), 0, (size_t)out->cols * 4);
    }
    return SRLM_OK;
}

srlm_status cpu_rmsnorm(srlm_backend *be, srlm_view *y, const srlm_view *x,
                               const srlm_view *w, float eps) {
    (void)be;
    const float *g = w->data;
    int64_t n = x->cols;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < x->rows; i++) {
        const float *xi = ROW(x, i);
        float *yi = ROW(y, i);
        float ss = 0.0f;
        for (int64_t j = 0; j < n; j++) ss += xi[j] * xi[j];
        float inv = 1.0f / sqrtf(ss / (float)n + eps);
        for (int64_t j = 0; j < n; j++) yi[j] = g[j] * (xi[j] * inv);
    }
    return SRLM_OK;
}

/* Hugging Face's convention: the head is split in halves (x1, x2), not interleaved
 * pairs, and frequency j rotates elements j and j + d/2. The angles are computed in
 * fp32 the way transformers does (inv_freq = 1 / theta^(2j/d), angle = pos * inv_freq).
 * sign = -1 rotates back: the transpose, used by the backward pass. */
srlm_status cpu_rope_rotate(srlm_view *x, const int *pos, int n_heads, int head_dim, float theta,
                            float sign) {
    /* the tables below hold half a head: 1024 is the model's limit too */
    if (head_dim < 2 || head_dim % 2 || head_dim > 1024 || n_heads < 1 || x->cols < (int64_t)n_heads * head_dim)
        return SRLM_ERR(SRLM_BAD_INPUT, "cpu backend: rope: %d heads of %d on %lld columns; expected n_heads >= 1, "
                        "an even head_dim in 2 .. 1024 and the heads within the columns", n_heads, head_dim,
                        (long long)x->cols);
    int half = head_dim / 2;
    float inv_freq[512]; /* per call, not per row: the same powf values, a third of the work */
    for (int j = 0; j < half; j++) inv_freq[j] = 1.0f / powf(theta, (float)(2 * j) / (float)head_dim);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < x->rows; i++) {
        float c[512], s[512];
        for (int j = 0; j < half; j++) {
            float angle = (float)pos[i] * inv_freq[j];
            c[j] = cosf(angle);
            s[j] = sign * sinf(angle);
        }
        float *row = ROW(x, i);
        for (int h = 0; h < n_heads; h++) {
            float *v = row + (size_t)h * head_dim;
            for (int j = 0; j < half; j++) {
                float x1 = v[j], x2 = v[j + half];
                v[j] = x1 * c[j] - x2 * s[j];
                v[j + half] = x2 * c[j] + x1 * s[j];
            }
        }
    }
    return SRLM_OK;
}

srlm_status cpu_rope(srlm_backend *be, srlm_view *x, const int *pos, int n_heads,
                            int head_dim, float theta) {
    (void)be;
    return cpu_rope_rotate(x, pos, n_heads, head_dim, theta, 1.0f);
}

srlm_status cpu_kv_store(srlm_backend *be, srlm_view *cache, const srlm_view *kv,
                                const srlm_attn_shape *s) {
    (void)be;
    SRLM_CHECK(srlm_attn_seq_check("kv_store", cache, s));
    for (int b = 0; b < s->B; b++)
        for (int t = 0; t < s->n_new[b]; t++) {
            int64_t dst = (int64_t)s->slot[b] * s->max_seq + s->n_past[b] + t;
            memcpy(ROW(cache, dst), ROW(kv, (int64_t)b * s->T + t), (size_t)kv->cols * 4);
        }
    return SRLM_OK;
}

void cpu_attn_probs(float *sc, const float *qb, int64_t ldq, const float *kb, int64_t ldk, int nq,
                    int len, int hd, float scale, int first_valid, float *lse, int64_t ld_lse) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, len, hd, scale, qb, (int)ldq, kb,
                (int)ldk, 0.0f, sc, len);
    for (int i = 0; i < nq; i++) {
        float *p = sc + (size_t)i * len;
        int valid = first_valid + i; /* causal: keys 0 .. own position */
        float mx = -INFINITY, sum = 0.0f;
        for (int j = 0; j < valid; j++) mx = p[j] > mx ? p[j] : mx;
        for (int j = 0; j < valid; j++) { p[j] = expf(p[j] - mx); sum += p[j]; }
        float inv = 1.0f / sum;
        if (lse) lse[(int64_t)i * ld_lse] = mx + logf(sum);
        for (int j = 0; j < valid; j++) p[j] *= inv;
        for (int j = valid; j < len; j++) p[j] = 0.0f;
    }
}

cpu_attn_piece *cpu_attn_pieces(const srlm_attn_shape *s, int *n, int *max_keys) {
    *n = s->n_seg > 0 ? s->n_seg : s->B;
    *max_keys = 1;
    cpu_attn_piece *pc = malloc(sizeof *pc * (size_t)(*n > 0 ? *n : 1));
    if (!pc) return NULL;
    for (int i = 0; i < *n; i++) {
        pc[i] = s->n_seg > 0 ? (cpu_attn_piece){s->seg_off[i], (int64_t)s->slot[0] * s->max_seq + s->seg_off[i], 0,
                                                s->seg_off[i + 1] - s->seg_off[i]}
                             : (cpu_attn_piece){(int64_t)i * s->T, (int64_t)s->slot[i] * s->max_seq, s->n_past[i],
                                                s->n_new[i]};
        if (pc[i].n_past + pc[i].n_new > *max_keys) *max_keys = pc[i].n_past + pc[i].n_new;
    }
    return pc;
}

/* Per (piece, head): scores S = scale * Q K^T and output O = P V as two small
 * GEMMs over blocks of up to QBLOCK query rows, with the causal softmax in
 * between. BLAS called inside an OpenMP parallel region runs single-threaded.
 * Padding rows (t >= n_new) get zeros, so nothing stale flows into a backward pass. */
srlm_status cpu_attention(srlm_backend *be, srlm_view *out, const srlm_view *q,
                                 const srlm_view *k_cache, const srlm_view *v_cache,
                                 const srlm_attn_shape *s, srlm_view *lse) {
    (void)be;
    SRLM_CHECK(srlm_attn_lse_check("attention", lse, s));
    SRLM_CHECK(srlm_attn_seg_check("attention", s));
    SRLM_CHECK(srlm_attn_seq_check("attention", k_cache, s));
    const int hd = s->head_dim, group = s->n_heads / s->n_kv_heads;
    const float scale = 1.0f / sqrtf((float)hd);
    for (int b = 0; b < s->B; b++)
        for (int t = s->n_new[b]; t < s->T; t++) {
            memset(ROW(out, (int64_t)b * s->T + t), 0, sizeof(float) * (size_t)s->n_heads * hd);
            if (lse) memset(ROW(lse, (int64_t)b * s->T + t), 0, sizeof(float) * (size_t)s->n_heads);
        }
    int n_pieces, max_keys;
    cpu_attn_piece *pc = cpu_attn_pieces(s, &n_pieces, &max_keys);
    if (!pc) return SRLM_ERR(SRLM_FAILED, "out of memory for %d attention pieces", n_pieces);
    const int64_t work = (int64_t)n_pieces * s->n_heads;
    int failed = 0;
#pragma omp parallel reduction(| : failed)
    {
        /* decode steps (T = 1) need one row: a small block stays off mmap'd memory */
        float *sc = malloc((size_t)(s->T < QBLOCK ? s->T : QBLOCK) * (size_t)max_keys * sizeof(float));
        if (!sc) failed = 1;
#pragma omp for schedule(dynamic, 1)
        for (int64_t w = 0; w < work; w++) {
            const int h = (int)(w % s->n_heads);
            const cpu_attn_piece *p = &pc[w / s->n_heads];
            if (!sc) continue;
            int kvh = h / group;
            const float *kb = ROW(k_cache, p->k0) + (size_t)kvh * hd;
            const float *vb = ROW(v_cache, p->k0) + (size_t)kvh * hd;
            for (int t0 = 0; t0 < p->n_new; t0 += QBLOCK) {
                int nq = p->n_new - t0 < QBLOCK ? p->n_new - t0 : QBLOCK;
                int len = p->n_past + t0 + nq; /* keys the last query of the block sees */
                const float *qb = ROW(q, p->q0 + t0) + (size_t)h * hd;
                float *ob = ROW(out, p->q0 + t0) + (size_t)h * hd;
                cpu_attn_probs(sc, qb, q->stride, kb, k_cache->stride, nq, len, hd, scale, p->n_past + t0 + 1,
                               lse ? ROW(lse, p->q0 + t0) + h : NULL, lse ? lse->stride : 0);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, hd, len, 1.0f, sc, len,
                            vb, (int)v_cache->stride, 0.0f, ob, (int)out->stride);
            }
        }
        free(sc);
    }
    free(pc);
    if (failed) return SRLM_ERR(SRLM_FAILED, "out of memory for attention scratch (%d x %d floats per thread)",
                                QBLOCK, max_keys);
    return SRLM_OK;
}

srlm_status cpu_swiglu(srlm_backend *be, srlm_view *out, const srlm_view *gate,
                              const srlm_view *up) {
    (void)be;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < out->rows; i++) {
        const float *g = ROW(gate, i), *u = ROW(up, i);
        float *o = ROW(out, i);
        for (int64_t j = 0; j < out->cols; j++) o[j] = g[j] / (1.0f + expf(-g[j])) * u[j];
    }
    return SRLM_OK;
}

srlm_status cpu_copy_rows(srlm_backend *be, srlm_view *dst, const srlm_view *src,
                                 const int *src_rows, int n) {
    (void)be;
    for (int i = 0; i < n; i++)
        memcpy(ROW(dst, i), ROW(src, src_rows[i]), (size_t)dst->cols * 4);
    return SRLM_OK;
}

srlm_status cpu_copy(srlm_backend *be, srlm_view *dst, const srlm_view *src) {
    (void)be;
    for (int64_t i = 0; i < src->rows; i++)
        memcpy(ROW(dst, i), ROW(src, i), (size_t)src->cols * 4);
    return SRLM_OK;
}

srlm_status cpu_add(srlm_backend *be, srlm_view *y, const srlm_view *x) {
    (void)be;
    for (int64_t i = 0; i < y->rows; i++) {
        float *yi = ROW(y, i);
        const float *xi = ROW(x, i);
        for (int64_t j = 0; j < y->cols; j++) yi[j] += xi[j];
    }
    return SRLM_OK;
}

srlm_status cpu_fill_cols(srlm_backend *be, srlm_view *v, int64_t c0, float value) {
    (void)be;
    for (int64_t i = 0; i < v->rows; i++) {
        float *r = ROW(v, i);
        for (int64_t j = c0; j < v->cols; j++) r[j] = value;
    }
    return SRLM_OK;
}

/* Two sweeps over a row that the cache holds (the max, then the sum with it):
 * on the CPU that costs little, and it is the sum srlm has always formed. */
srlm_status cpu_row_logsumexp_target(srlm_backend *be, const srlm_view *logits, const int *targets,
                                     int64_t vocab_start, float *mx, float *se, float *tl) {
    (void)be;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < logits->rows; i++) {
        const float *r = ROW(logits, i);
        float m = -INFINITY;
        for (int64_t j = 0; j < logits->cols; j++) m = r[j] > m ? r[j] : m;
        double s = 0.0; /* fp32 terms (each exact to 1 ulp), summed in double over 32k of them */
        if (m != -INFINITY)
            for (int64_t j = 0; j < logits->cols; j++) s += expf(r[j] - m);
        else /* padding only (exp(-inf - -inf) would be NaN): no term, but a NaN still shows */
            for (int64_t j = 0; j < logits->cols; j++) s = isnan(r[j]) ? NAN : s;
        mx[i] = m;
        se[i] = (float)s;
        int64_t c = (int64_t)targets[i] - vocab_start;
        tl[i] = (c >= 0 && c < logits->cols) ? r[c] : 0.0f;
    }
    return SRLM_OK;
}

srlm_status cpu_row_argmax(srlm_backend *be, const srlm_view *logits, int *idx, float *val) {
    (void)be;
    for (int64_t i = 0; i < logits->rows; i++) {
        const float *r = ROW(logits, i);
        int64_t best = 0;
        for (int64_t j = 1; j < logits->cols; j++) if (r[j] > r[best]) best = j;
        idx[i] = (int)best;
        val[i] = r[best];
    }
    return SRLM_OK;
}

/* The optimizer ops: contiguous fp32 views of one shape, the twins in train/optimizer.c. */
static srlm_status need_flat(const srlm_view *v, const srlm_view *like, const char *op, const char *name) {
    if (v->dtype != SRLM_F32) /* as the CUDA backend: the optimizer state and gradients are fp32 */
        return SRLM_ERR(SRLM_BAD_INPUT, "cpu backend: %s: %s is %s; the optimizer works on F32", op, name,
                        srlm_dtype_name(v->dtype));
    if (v->stride != v->cols || (like && v->rows * v->cols != like->rows * like->cols))
        return SRLM_ERR(SRLM_BAD_INPUT, "cpu backend: %s: %s must be contiguous and as large as param", op, name);
    return SRLM_OK;
}

srlm_status cpu_adamw(srlm_backend *be, srlm_view *param, const srlm_view *grad, srlm_view *m,
                      srlm_view *v, srlm_view *work, const srlm_adamw_consts *c) {
    (void)be;
    SRLM_CHECK(need_flat(param, NULL, "adamw", "param"));
    SRLM_CHECK(need_flat(grad, param, "adamw", "grad"));
    SRLM_CHECK(need_flat(m, param, "adamw", "m"));
    SRLM_CHECK(need_flat(v, param, "adamw", "v"));
    if (work && work->dtype != SRLM_F32 && work->dtype != SRLM_BF16)
        return SRLM_ERR(SRLM_BAD_INPUT, "cpu backend: adamw: work is %s; the working weights are F32 or BF16",
                        srlm_dtype_name(work->dtype));
    if (work && (work->stride != work->cols || work->rows * work->cols != param->rows * param->cols))
        return SRLM_ERR(SRLM_BAD_INPUT, "cpu backend: adamw: work must be contiguous and as large as param");
    const size_t n = (size_t)(param->rows * param->cols);
    srlm_adamw_apply(param->data, grad->data, m->data, v->data, n, c);
    if (work) srlm_convert_from_f32(work->data, work->dtype, param->data, n); /* a second pass: cheap here */
    return SRLM_OK;
}

srlm_status cpu_sum_squares(srlm_backend *be, const srlm_view *xs, int n, double *out) {
    (void)be;
    if (n < 0 || (n > 0 && (!xs || !out)))
        return SRLM_ERR(SRLM_BAD_INPUT, "cpu backend: sum_squares: %d views%s; expected a count >= 0 and, above 0, the "
                        "views and room for their results", n, n > 0 ? " and no array" : "");
    for (int i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "xs[%d]", i);
        SRLM_CHECK(need_flat(&xs[i], NULL, "sum_squares", name));
    }
    for (int i = 0; i < n; i++) out[i] = srlm_sum_squares(xs[i].data, (size_t)(xs[i].rows * xs[i].cols));
    return SRLM_OK;
}

srlm_status cpu_scale(srlm_backend *be, srlm_view *x, float s) {
    (void)be;
    SRLM_CHECK(need_flat(x, NULL, "scale", "x"));
    srlm_scale_f32(x->data, (size_t)(x->rows * x->cols), s);
    return SRLM_OK;
}

void cpu_destroy(srlm_backend *be) { free(be); }


srlm_status srlm_backend_cpu_new(srlm_backend **out, int threads) {
    srlm_backend *be = calloc(1, sizeof *be);
    if (!be) return SRLM_ERR(SRLM_FAILED, "out of memory creating the cpu backend");
    if (threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (int)n : 1;
    }
    be->ops = &cpu_ops;
    be->threads = threads;
    openblas_set_num_threads(threads);
    omp_set_num_threads(threads);
    *out = be;
    return SRLM_OK;
}

