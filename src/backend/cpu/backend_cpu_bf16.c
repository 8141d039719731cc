/* The CPU backend's ops table, and its BF16 views: the CPU twin of a bf16
 * model on the CUDA backend.
 *
 * An op on BF16 views computes what the fp32 op computes on the same values
 * widened to fp32 (exact), and each BF16 output is rounded once, at the end,
 * to nearest even (srlm_f32_to_bf16); views the op reads and writes are
 * widened first and rounded back after. So every entry here checks the dtypes
 * as the CUDA backend does (F16 is refused everywhere), hands an all-F32 call
 * to the fp32 op as it is, and otherwise runs the same fp32 op on contiguous
 * fp32 copies of the BF16 views ("staging"). Ops that only move values
 * (upload, copy, embedding, kv_store, copy_rows, fill) move bf16 bits
 * directly: widening and rounding back is the identity there.
 *
 * BF16 calls are checked for shapes as the CUDA backend checks them, since
 * the copies are made by the views' shapes; F32 calls behave as before. */
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_internal.h"

#define ROW16(v, i) ((uint16_t *)(v)->data + (size_t)(i) * (size_t)(v)->stride)

enum {
    PAR_MIN = 1 << 16,  /* elements: conversions use threads from here on */
    BLOCK = 1 << 12,    /* elements of a row per conversion task (a flat view is one long row) */
    LOGITS_BLOCK = 1 << 22, /* elements per staged block of the row-wise logits ops */
};

/* ---- dtype and shape checks; SRLM_BAD_INPUT naming the op and the argument ---- */

static srlm_status want_float(const char *op, const char *name, const srlm_view *v) {
    if (v->dtype != SRLM_F32 && v->dtype != SRLM_BF16)
        return SRLM_ERR(SRLM_BAD_INPUT, "cpu backend: %s: %s is %s, expected F32 or BF16", op, name,
                        srlm_dtype_name(v->dtype));
    return SRLM_OK;
}

/* b has a's dtype, which is F32 or BF16 */
static srlm_status want_dtype_of(const char *op, const char *bn, const srlm_view *b, const char *an,
                                 const srlm_view *a) {
    SRLM_CHECK(want_float(op, an, a));
    if (b->dtype != a->dtype)
        return SRLM_ERR(SRLM_BAD_INPUT, "cpu backend: %s: %s is %s, expected %s (the dtype of %s)", op, bn,
                        srlm_dtype_name(b->dtype), srlm_dtype_name(a->dtype), an);
    return SRLM_OK;
}

/* b is (rows, cols) */
static srlm_status want_shape(const char *op, const char *bn, const srlm_view *b, int64_t rows, int64_t cols) {
    if (b->rows != rows || b->cols != cols)
        return SRLM_ERR(SRLM_BAD_INPUT, "cpu backend: %s: %s is (%lld,%lld), expected (%lld,%lld)", op, bn,
                        (long long)b->rows, (long long)b->cols, (long long)rows, (long long)cols);
    return SRLM_OK;
}

/* cuda_gemm's rule: the inputs share a dtype, the output is F32 or theirs */
static srlm_status want_gemm(const char *op, const char *cn, const srlm_view *c, const char *an,
                             const srlm_view *a, const char *bn, const srlm_view *b) {
    SRLM_CHECK(want_float(op, cn, c));
    SRLM_CHECK(want_float(op, an, a));
    SRLM_CHECK(want_float(op, bn, b));
    if (a->dtype != b->dtype || (c->dtype != SRLM_F32 && c->dtype != a->dtype))
        return SRLM_ERR(SRLM_BAD_INPUT, "cpu backend: %s: %s is %s, %s %s, %s %s; expected %s and %s of one "
                        "dtype and %s F32 or theirs", op, an, srlm_dtype_name(a->dtype), bn,
                        srlm_dtype_name(b->dtype), cn, srlm_dtype_name(c->dtype), an, bn, cn);
    return SRLM_OK;
}

/* ---- conversion and staging ---- */

/* (rows x cols) elements from src (dtype st, rows ss elements apart) to dst
 * (dt, ds apart), F32 or BF16: widened exactly, rounded to nearest even, or
 * bit-copied when the dtypes agree. */
static void convert(void *dst, srlm_dtype dt, int64_t ds, const void *src, srlm_dtype st, int64_t ss,
                    int64_t rows, int64_t cols) {
    const size_t de = srlm_dtype_size(dt), se = srlm_dtype_size(st);
    const int64_t nb = (cols + BLOCK - 1) / BLOCK;
#pragma omp parallel for collapse(2) schedule(static) if (rows * cols >= PAR_MIN)
    for (int64_t i = 0; i < rows; i++)
        for (int64_t b = 0; b < nb; b++) {
            const int64_t j = b * BLOCK, n = cols - j < BLOCK ? cols - j : BLOCK;
            char *d = (char *)dst + ((size_t)(i * ds) + (size_t)j) * de;
            const char *s = (const char *)src + ((size_t)(i * ss) + (size_t)j) * se;
            if (dt == st) memcpy(d, s, (size_t)n * de);
            else if (dt == SRLM_F32) srlm_convert_to_f32((float *)d, s, SRLM_BF16, (size_t)n);
            else srlm_convert_from_f32(d, SRLM_BF16, (const float *)s, (size_t)n);
        }
}

static void fill16(const srlm_view *v, int64_t c0, float value) {
    const uint16_t h = srlm_f32_to_bf16(value);
    for (int64_t i = 0; i < v->rows; i++) {
        uint16_t *r = ROW16(v, i);
        for (int64_t j = c0; j < v->cols; j++) r[j] = h;
    }
}

typedef struct {
    const srlm_view *orig; /* the caller's view (NULL: an unused slot) */
    srlm_view        f;    /* what the fp32 op gets: *orig itself when that is F32 */
    float           *buf;  /* the contiguous fp32 copy of a BF16 view */
} staged;

static srlm_status stage_buffer(const char *op, const char *name, int64_t rows, int64_t cols, staged *s) {
    size_t n = (size_t)rows * (size_t)cols;
    s->buf = calloc(n ? n : 1, sizeof(float));
    if (!s->buf)
        return SRLM_ERR(SRLM_FAILED, "cpu backend: %s: out of memory for an fp32 copy of %s (%lld x %lld)", op,
                        name, (long long)rows, (long long)cols);
    s->f = (srlm_view){s->buf, SRLM_F32, rows, cols, cols};
    return SRLM_OK;
}

/* An fp32 view of v for the fp32 op: v itself when F32, else a contiguous
 * copy, widened from v when `load` (not needed for an output the op writes
 * whole). */
static srlm_status stage_in(const char *op, const char *name, const srlm_view *v, int load, staged *s) {
    *s = (staged){v, *v, NULL};
    if (v->dtype == SRLM_F32) return SRLM_OK;
    SRLM_CHECK(stage_buffer(op, name, v->rows, v->cols, s));
    if (load) convert(s->buf, SRLM_F32, v->cols, v->data, SRLM_BF16, v->stride, v->rows, v->cols);
    return SRLM_OK;
}

/* Rounds the copy back into its BF16 view when `store`, and frees it. */
static void stage_out(staged *s, int store) {
    if (s->buf && store)
        convert(s->orig->data, SRLM_BF16, s->orig->stride, s->buf, SRLM_F32, s->orig->cols, s->orig->rows,
                s->orig->cols);
    free(s->buf);
    s->buf = NULL;
}

/* The end of a staged call: stores the copies whose bit is set in `outs` if
 * the op succeeded, frees them all. */
static srlm_status finish(staged *s, int n, unsigned outs, srlm_status st) {
    for (int i = 0; i < n; i++) stage_out(&s[i], st == SRLM_OK && ((outs >> i) & 1u));
    return st;
}

/* In the ops below: stage argument `v` into s[i] (op, s, st and label done in scope). */
#define STAGE(i, v, load) SRLM_CHECK_GOTO(stage_in(op, #v, v, load, &s[i]), st, done)

/* The first `cols` columns of v (the attention and rope ops touch no others). */
static srlm_view cols_of(const srlm_view *v, int64_t cols) {
    srlm_view c = *v;
    c.cols = cols;
    return c;
}

/* ---- memory ---- */

static srlm_status op_upload(srlm_backend *be, srlm_view *dst, const float *src) {
    SRLM_CHECK(want_float("upload", "dst", dst));
    if (dst->dtype == SRLM_F32) return cpu_upload(be, dst, src);
    convert(dst->data, SRLM_BF16, dst->stride, src, SRLM_F32, dst->cols, dst->rows, dst->cols);
    return SRLM_OK;
}

static srlm_status op_download(srlm_backend *be, float *dst, const srlm_view *src) {
    SRLM_CHECK(want_float("download", "src", src));
    if (src->dtype == SRLM_F32) return cpu_download(be, dst, src);
    convert(dst, SRLM_F32, src->cols, src->data, SRLM_BF16, src->stride, src->rows, src->cols);
    return SRLM_OK;
}

static srlm_status op_fill(srlm_backend *be, srlm_view *v, float value) {
    SRLM_CHECK(want_float("fill", "v", v));
    if (v->dtype == SRLM_F32) return cpu_fill(be, v, value);
    fill16(v, 0, value);
    return SRLM_OK;
}

static srlm_status op_fill_cols(srlm_backend *be, srlm_view *v, int64_t c0, float value) {
    SRLM_CHECK(want_float("fill_cols", "v", v));
    if (v->dtype == SRLM_F32) return cpu_fill_cols(be, v, c0, value);
    if (c0 < 0)
        return SRLM_ERR(SRLM_BAD_INPUT, "cpu backend: fill_cols: first column %lld is negative", (long long)c0);
    fill16(v, c0, value);
    return SRLM_OK;
}

/* Any of F32 and BF16 into any: how fp32 master weights become bf16 weights. */
static srlm_status op_copy(srlm_backend *be, srlm_view *dst, const srlm_view *src) {
    SRLM_CHECK(want_float("copy", "dst", dst));
    SRLM_CHECK(want_float("copy", "src", src));
    if (dst->dtype == SRLM_F32 && src->dtype == SRLM_F32) return cpu_copy(be, dst, src);
    SRLM_CHECK(want_shape("copy", "dst", dst, src->rows, src->cols));
    convert(dst->data, dst->dtype, dst->stride, src->data, src->dtype, src->stride, src->rows, src->cols);
    return SRLM_OK;
}

static srlm_status op_copy_rows(srlm_backend *be, srlm_view *dst, const srlm_view *src, const int *src_rows,
                                int n) {
    SRLM_CHECK(want_dtype_of("copy_rows", "src", src, "dst", dst));
    if (dst->dtype == SRLM_F32) return cpu_copy_rows(be, dst, src, src_rows, n);
    if (dst->cols != src->cols || n < 0 || n > dst->rows)
        return SRLM_ERR(SRLM_BAD_INPUT, "cpu backend: copy_rows shapes: %d rows into dst (%lld,%lld) from src "
                        "(%lld,%lld)", n, (long long)dst->rows, (long long)dst->cols, (long long)src->rows,
                        (long long)src->cols);
    for (int i = 0; i < n; i++)
        if (src_rows[i] < 0 || src_rows[i] >= src->rows)
            return SRLM_ERR(SRLM_BAD_INPUT, "cpu backend: copy_rows: source row %d (entry %d) outside [0, %lld)",
                            src_rows[i], i, (long long)src->rows);
    for (int i = 0; i < n; i++) memcpy(ROW16(dst, i), ROW16(src, src_rows[i]), (size_t)dst->cols * 2);
    return SRLM_OK;
}

/* ---- forward ops ---- */

static srlm_status op_matmul(srlm_backend *be, srlm_view *y, const srlm_view *x, const srlm_view *w,
                             int accumulate) {
    const char *op = "matmul";
    SRLM_CHECK(want_gemm(op, "y", y, "x", x, "w", w));
    if (y->dtype == SRLM_F32 && x->dtype == SRLM_F32) return cpu_matmul(be, y, x, w, accumulate);
    staged s[3] = {{0}};
    srlm_status st;
    STAGE(0, x, 1);
    STAGE(1, w, 1);
    STAGE(2, y, accumulate);
    st = cpu_matmul(be, &s[2].f, &s[0].f, &s[1].f, accumulate);
done:
    return finish(s, 3, 1u << 2, st);
}

static srlm_status op_embedding(srlm_backend *be, srlm_view *out, const srlm_view *table, const int *ids, int n,
                                int64_t vocab_start) {
    SRLM_CHECK(want_dtype_of("embedding", "table", table, "out", out));
    if (out->dtype == SRLM_F32) return cpu_embedding(be, out, table, ids, n, vocab_start);
    if (out->cols != table->cols || n < 0 || n > out->rows)
        return SRLM_ERR(SRLM_BAD_INPUT, "cpu backend: embedding shapes: %d ids into out (%lld,%lld) from table "
                        "(%lld,%lld)", n, (long long)out->rows, (long long)out->cols, (long long)table->rows,
                        (long long)table->cols);
    for (int i = 0; i < n; i++) {
        int64_t r = (int64_t)ids[i] - vocab_start;
        if (r >= 0 && r < table->rows) memcpy(ROW16(out, i), ROW16(table, r), (size_t)out->cols * 2);
        else memset(ROW16(out, i), 0, (size_t)out->cols * 2);
    }
    return SRLM_OK;
}

static srlm_status op_rmsnorm(srlm_backend *be, srlm_view *y, const srlm_view *x, const srlm_view *w, float eps) {
    const char *op = "rmsnorm";
    SRLM_CHECK(want_dtype_of(op, "y", y, "x", x));
    SRLM_CHECK(want_dtype_of(op, "w", w, "x", x));
    if (x->dtype == SRLM_F32) return cpu_rmsnorm(be, y, x, w, eps);
    SRLM_CHECK(want_shape(op, "y", y, x->rows, x->cols));
    SRLM_CHECK(want_shape(op, "w", w, 1, x->cols));
    staged s[3] = {{0}};
    srlm_status st;
    STAGE(0, x, 1);
    STAGE(1, w, 1);
    STAGE(2, y, 0);
    st = cpu_rmsnorm(be, &s[2].f, &s[0].f, &s[1].f, eps);
done:
    return finish(s, 3, 1u << 2, st);
}

/* rope and rope_backward: in place on the heads' columns */
static srlm_status rope_signed(srlm_backend *be, const char *op, srlm_view *x, const int *pos, int n_heads,
                               int head_dim, float theta, int backward) {
    SRLM_CHECK(want_float(op, "x", x));
    if (x->dtype == SRLM_F32)
        return backward ? cpu_rope_backward(be, x, pos, n_heads, head_dim, theta)
                        : cpu_rope(be, x, pos, n_heads, head_dim, theta);
    if (n_heads < 0 || head_dim < 0 || (int64_t)n_heads * head_dim > x->cols || head_dim % 2)
        return SRLM_ERR(SRLM_BAD_INPUT, "cpu backend: %s shapes: x (%lld,%lld) holds fewer than %d heads of %d "
                        "(even) values", op, (long long)x->rows, (long long)x->cols, n_heads, head_dim);
    const srlm_view heads = cols_of(x, (int64_t)n_heads * head_dim);
    staged s[1] = {{0}};
    srlm_status st;
    SRLM_CHECK_GOTO(stage_in(op, "x", &heads, 1, &s[0]), st, done);
    st = backward ? cpu_rope_backward(be, &s[0].f, pos, n_heads, head_dim, theta)
                  : cpu_rope(be, &s[0].f, pos, n_heads, head_dim, theta);
done:
    return finish(s, 1, 1u, st);
}

static srlm_status op_rope(srlm_backend *be, srlm_view *x, const int *pos, int n_heads, int head_dim,
                           float theta) {
    return rope_signed(be, "rope", x, pos, n_heads, head_dim, theta, 0);
}

static srlm_status op_kv_store(srlm_backend *be, srlm_view *cache, const srlm_view *kv, const srlm_attn_shape *s) {
    SRLM_CHECK(want_dtype_of("kv_store", "kv", kv, "cache", cache));
    /* the shapes are checked for both dtypes: the F32 op indexes by them unchecked */
    if (kv->cols != cache->cols || kv->rows != (int64_t)s->B * s->T)
        return SRLM_ERR(SRLM_BAD_INPUT, "cpu backend: kv_store shapes: kv (%lld,%lld) for B %d x T %d into cache "
                        "(%lld,%lld)", (long long)kv->rows, (long long)kv->cols, s->B, s->T,
                        (long long)cache->rows, (long long)cache->cols);
    SRLM_CHECK(srlm_attn_seq_check("cpu backend: kv_store", cache, s));
    if (cache->dtype == SRLM_F32) return cpu_kv_store(be, cache, kv, s);
    for (int b = 0; b < s->B; b++)
        for (int t = 0; t < s->n_new[b]; t++)
            memcpy(ROW16(cache, (int64_t)s->slot[b] * s->max_seq + s->n_past[b] + t),
                   ROW16(kv, (int64_t)b * s->T + t), (size_t)kv->cols * 2);
    return SRLM_OK;
}

/* A BF16 attention call's shape for the fp32 op: sequence b in slot b of a
 * cache with `max_seq` = the longest sequence's keys, so that only the cache
 * rows the call reads are widened (a long cache is never copied whole). */
typedef struct {
    srlm_attn_shape s;
    int            *slot;
} packed_shape;

static srlm_status pack_shape(const char *op, const srlm_attn_shape *s, packed_shape *p) {
    int len = 1;
    for (int b = 0; b < s->B; b++)
        if (s->n_past[b] + s->n_new[b] > len) len = s->n_past[b] + s->n_new[b];
    p->slot = malloc(sizeof(int) * (size_t)(s->B > 0 ? s->B : 1));
    if (!p->slot) return SRLM_ERR(SRLM_FAILED, "cpu backend: %s: out of memory for %d slots", op, s->B);
    for (int b = 0; b < s->B; b++) p->slot[b] = b;
    p->s = *s;
    p->s.slot = p->slot;
    p->s.max_seq = len;
    return SRLM_OK;
}

/* The KV heads' columns of the rows of a cache the sequences use, packed as
 * pack_shape lays them out (widened when `load`). */
static srlm_status stage_cache(const char *op, const char *name, const srlm_view *cache,
                               const srlm_attn_shape *s, const packed_shape *p, int load, staged *st) {
    const int64_t cols = (int64_t)s->n_kv_heads * s->head_dim, len = p->s.max_seq;
    *st = (staged){cache, *cache, NULL};
    SRLM_CHECK(stage_buffer(op, name, (int64_t)s->B * len, cols, st));
    if (load)
        for (int b = 0; b < s->B; b++)
            convert(st->buf + (size_t)(b * len * cols), SRLM_F32, cols,
                    ROW16(cache, (int64_t)s->slot[b] * s->max_seq), SRLM_BF16, cache->stride,
                    s->n_past[b] + s->n_new[b], cols);
    return SRLM_OK;
}

/* dk or dv back into the cache: the fp32 op writes each sequence's whole slot
 * (zeros past its keys) in the KV heads' columns, so rows past the packed
 * ones are zeros there too. */
static void unstage_cache(staged *st, const srlm_attn_shape *s, const packed_shape *p, int store) {
    const int64_t cols = (int64_t)s->n_kv_heads * s->head_dim, len = p->s.max_seq;
    for (int b = 0; store && b < s->B; b++) {
        const int64_t r0 = (int64_t)s->slot[b] * s->max_seq;
        convert(ROW16(st->orig, r0), SRLM_BF16, st->orig->stride, st->buf + (size_t)(b * len * cols), SRLM_F32,
                cols, len, cols);
        const srlm_view rest = srlm_view_rows(cols_of(st->orig, cols), r0 + len, s->max_seq - len);
        fill16(&rest, 0, 0.0f);
    }
    free(st->buf);
    st->buf = NULL;
}

/* q, the outputs and the caches as the CUDA backend wants them */
static srlm_status want_attn_shapes(const char *op, const srlm_view *q, const srlm_view *k_cache,
                                    const srlm_attn_shape *s) {
    if (q->rows != (int64_t)s->B * s->T || q->cols < (int64_t)s->n_heads * s->head_dim ||
        k_cache->cols < (int64_t)s->n_kv_heads * s->head_dim || s->n_kv_heads <= 0 ||
        s->n_heads % s->n_kv_heads)
        return SRLM_ERR(SRLM_BAD_INPUT, "cpu backend: %s shapes: q (%lld,%lld) for B %d x T %d, %d heads of %d; "
                        "cache (%lld,%lld) for %d kv heads", op, (long long)q->rows, (long long)q->cols, s->B,
                        s->T, s->n_heads, s->head_dim, (long long)k_cache->rows, (long long)k_cache->cols,
                        s->n_kv_heads);
    SRLM_CHECK(srlm_attn_seg_check(op, s));
    return srlm_attn_seq_check(op, k_cache, s);
}

static srlm_status op_attention(srlm_backend *be, srlm_view *out, const srlm_view *q, const srlm_view *k_cache,
                                const srlm_view *v_cache, const srlm_attn_shape *s, srlm_view *lse) {
    const char *op = "attention";
    SRLM_CHECK(want_dtype_of(op, "out", out, "q", q));
    SRLM_CHECK(want_dtype_of(op, "k_cache", k_cache, "q", q));
    SRLM_CHECK(want_dtype_of(op, "v_cache", v_cache, "q", q));
    SRLM_CHECK(srlm_attn_lse_check(op, lse, s)); /* F32 whatever q is */
    SRLM_CHECK(want_shape(op, "out", out, q->rows, q->cols));
    SRLM_CHECK(want_shape(op, "v_cache", v_cache, k_cache->rows, k_cache->cols));
    SRLM_CHECK(want_attn_shapes(op, q, k_cache, s));
    if (q->dtype == SRLM_F32) return cpu_attention(be, out, q, k_cache, v_cache, s, lse);
    const int64_t qc = (int64_t)s->n_heads * s->head_dim;
    const srlm_view qh = cols_of(q, qc), oh = cols_of(out, qc);
    packed_shape p = {{0}, NULL};
    staged sv[4] = {{0}}; /* q, out (written whole in the heads' columns), k, v */
    srlm_status st;
    SRLM_CHECK_GOTO(pack_shape(op, s, &p), st, done);
    SRLM_CHECK_GOTO(stage_in(op, "q", &qh, 1, &sv[0]), st, done);
    SRLM_CHECK_GOTO(stage_in(op, "out", &oh, 0, &sv[1]), st, done);
    SRLM_CHECK_GOTO(stage_cache(op, "k_cache", k_cache, s, &p, 1, &sv[2]), st, done);
    SRLM_CHECK_GOTO(stage_cache(op, "v_cache", v_cache, s, &p, 1, &sv[3]), st, done);
    st = cpu_attention(be, &sv[1].f, &sv[0].f, &sv[2].f, &sv[3].f, &p.s, lse);
done:
    free(p.slot);
    return finish(sv, 4, 1u << 1, st);
}

static srlm_status op_swiglu(srlm_backend *be, srlm_view *out, const srlm_view *gate, const srlm_view *up) {
    const char *op = "swiglu";
    SRLM_CHECK(want_dtype_of(op, "gate", gate, "out", out));
    SRLM_CHECK(want_dtype_of(op, "up", up, "out", out));
    if (out->dtype == SRLM_F32) return cpu_swiglu(be, out, gate, up);
    SRLM_CHECK(want_shape(op, "gate", gate, out->rows, out->cols));
    SRLM_CHECK(want_shape(op, "up", up, out->rows, out->cols));
    staged s[3] = {{0}};
    srlm_status st;
    STAGE(0, gate, 1);
    STAGE(1, up, 1);
    STAGE(2, out, 0);
    st = cpu_swiglu(be, &s[2].f, &s[0].f, &s[1].f);
done:
    return finish(s, 3, 1u << 2, st);
}

static srlm_status op_add(srlm_backend *be, srlm_view *y, const srlm_view *x) {
    const char *op = "add";
    SRLM_CHECK(want_dtype_of(op, "x", x, "y", y));
    if (y->dtype == SRLM_F32) return cpu_add(be, y, x);
    SRLM_CHECK(want_shape(op, "x", x, y->rows, y->cols));
    staged s[2] = {{0}};
    srlm_status st;
    STAGE(0, x, 1);
    STAGE(1, y, 1);
    st = cpu_add(be, &s[1].f, &s[0].f);
done:
    return finish(s, 2, 1u << 1, st);
}

/* The CPU twin of the fused kernel: the two ops, so the same bits by definition. */
static srlm_status op_add_rmsnorm(srlm_backend *be, srlm_view *x, srlm_view *y, const srlm_view *r,
                                  const srlm_view *w, float eps) {
    SRLM_CHECK(op_add(be, x, r));
    return op_rmsnorm(be, y, x, w, eps);
}

/* ---- the row-wise logits ops: in blocks of rows, which give the same rows as
 * one call, so that a vocab-wide view is never copied whole ---- */

static int64_t logits_rows(const srlm_view *v, int64_t r0) {
    int64_t per = v->cols > 0 ? LOGITS_BLOCK / v->cols : v->rows;
    if (per < 1) per = 1;
    return v->rows - r0 < per ? v->rows - r0 : per;
}

static srlm_status op_row_logsumexp_target(srlm_backend *be, const srlm_view *logits, const int *targets,
                                           int64_t vocab_start, float *mx, float *se, float *tl) {
    const char *op = "row_logsumexp_target";
    SRLM_CHECK(want_float(op, "logits", logits));
    if (logits->dtype == SRLM_F32) return cpu_row_logsumexp_target(be, logits, targets, vocab_start, mx, se, tl);
    for (int64_t r0 = 0, n; r0 < logits->rows; r0 += n) {
        n = logits_rows(logits, r0);
        const srlm_view part = srlm_view_rows(*logits, r0, n);
        staged s;
        SRLM_CHECK(stage_in(op, "logits", &part, 1, &s));
        SRLM_CHECK(finish(&s, 1, 0,
                          cpu_row_logsumexp_target(be, &s.f, targets + r0, vocab_start, mx + r0, se + r0, tl + r0)));
    }
    return SRLM_OK;
}

static srlm_status op_row_argmax(srlm_backend *be, const srlm_view *logits, int *idx, float *val) {
    const char *op = "row_argmax";
    SRLM_CHECK(want_float(op, "logits", logits));
    if (logits->dtype == SRLM_F32) return cpu_row_argmax(be, logits, idx, val);
    for (int64_t r0 = 0, n; r0 < logits->rows; r0 += n) {
        n = logits_rows(logits, r0);
        const srlm_view part = srlm_view_rows(*logits, r0, n);
        staged s;
        SRLM_CHECK(stage_in(op, "logits", &part, 1, &s));
        SRLM_CHECK(finish(&s, 1, 0, cpu_row_argmax(be, &s.f, idx + r0, val + r0)));
    }
    return SRLM_OK;
}

static srlm_status op_logprob_backward(srlm_backend *be, srlm_view *logits, const float *mx, const float *se,
                                       const int *targets, int64_t vocab_start, const float *dlogp) {
    const char *op = "logprob_backward";
    SRLM_CHECK(want_float(op, "logits", logits));
    if (logits->dtype == SRLM_F32) return cpu_logprob_backward(be, logits, mx, se, targets, vocab_start, dlogp);
    for (int64_t r0 = 0, n; r0 < logits->rows; r0 += n) {
        n = logits_rows(logits, r0);
        const srlm_view part = srlm_view_rows(*logits, r0, n);
        staged s;
        SRLM_CHECK(stage_in(op, "logits", &part, 1, &s));
        SRLM_CHECK(finish(&s, 1, 1u, cpu_logprob_backward(be, &s.f, mx + r0, se + r0, targets + r0, vocab_start,
                                                          dlogp + r0)));
    }
    return SRLM_OK;
}

/* whole: the mask depends on each element's flat index in the view */
static srlm_status op_dropout(srlm_backend *be, srlm_view *x, float p, uint64_t key) {
    const char *op = "dropout";
    SRLM_CHECK(want_float(op, "x", x));
    if (x->dtype == SRLM_F32) return cpu_dropout(be, x, p, key);
    if (p <= 0.0f) return SRLM_OK; /* as the fp32 op: nothing dropped, nothing scaled */
    staged s[1] = {{0}};
    srlm_status st;
    STAGE(0, x, 1);
    st = cpu_dropout(be, &s[0].f, p, key);
done:
    return finish(s, 1, 1u, st);
}

/* ---- backward ops ---- */

static srlm_status op_matmul_dx(srlm_backend *be, srlm_view *dx, const srlm_view *dy, const srlm_view *w,
                                int accumulate) {
    const char *op = "matmul_dx";
    SRLM_CHECK(want_gemm(op, "dx", dx, "dy", dy, "w", w));
    if (dx->dtype == SRLM_F32 && dy->dtype == SRLM_F32) return cpu_matmul_dx(be, dx, dy, w, accumulate);
    staged s[3] = {{0}};
    srlm_status st;
    STAGE(0, dy, 1);
    STAGE(1, w, 1);
    STAGE(2, dx, accumulate);
    st = cpu_matmul_dx(be, &s[2].f, &s[0].f, &s[1].f, accumulate);
done:
    return finish(s, 3, 1u << 2, st);
}

/* dw F32 from BF16 dy and x: the fp32 gradients of a bf16 model */
static srlm_status op_matmul_dw(srlm_backend *be, srlm_view *dw, const srlm_view *dy, const srlm_view *x,
                                int accumulate) {
    const char *op = "matmul_dw";
    SRLM_CHECK(want_gemm(op, "dw", dw, "x", x, "dy", dy));
    if (dw->dtype == SRLM_F32 && x->dtype == SRLM_F32) return cpu_matmul_dw(be, dw, dy, x, accumulate);
    staged s[3] = {{0}};
    srlm_status st;
    STAGE(0, dy, 1);
    STAGE(1, x, 1);
    STAGE(2, dw, accumulate);
    st = cpu_matmul_dw(be, &s[2].f, &s[0].f, &s[1].f, accumulate);
done:
    return finish(s, 3, 1u << 2, st);
}

/* dtable and dx may differ in dtype. A BF16 dtable: only the rows the ids hit
 * are widened (into a packed table, in order of first use), the fp32 op sums
 * into them, and each is rounded once. */
static srlm_status op_embedding_backward(srlm_backend *be, srlm_view *dtable, const srlm_view *dx, const int *ids,
                                         int n, int64_t vocab_start) {
    const char *op = "embedding_backward";
    SRLM_CHECK(want_float(op, "dtable", dtable));
    SRLM_CHECK(want_float(op, "dx", dx));
    if (dtable->dtype == SRLM_F32 && dx->dtype == SRLM_F32)
        return cpu_embedding_backward(be, dtable, dx, ids, n, vocab_start);
    if (dtable->cols != dx->cols || n < 0 || n > dx->rows)
        return SRLM_ERR(SRLM_BAD_INPUT, "cpu backend: embedding_backward shapes: %d ids, dx (%lld,%lld) into "
                        "dtable (%lld,%lld)", n, (long long)dx->rows, (long long)dx->cols,
                        (long long)dtable->rows, (long long)dtable->cols);
    const srlm_view rows_in = srlm_view_rows(*dx, 0, n);
    const int64_t cols = dtable->cols;
    staged s[2] = {{0}}; /* dx, the packed table */
    int *where = NULL, *used = NULL, *packed = NULL;
    srlm_status st;
    SRLM_CHECK_GOTO(stage_in(op, "dx", &rows_in, 1, &s[0]), st, done);
    if (dtable->dtype == SRLM_F32) {
        st = cpu_embedding_backward(be, dtable, &s[0].f, ids, n, vocab_start);
        goto done;
    }
    where = malloc(sizeof(int) * (size_t)(dtable->rows > 0 ? dtable->rows : 1)); /* table row -> packed row */
    used = malloc(sizeof(int) * (size_t)(n > 0 ? n : 1));                        /* packed row -> table row */
    packed = malloc(sizeof(int) * (size_t)(n > 0 ? n : 1));                      /* id i -> packed row, or -1 */
    if (!where || !used || !packed) {
        st = SRLM_ERR(SRLM_FAILED, "cpu backend: %s: out of memory packing %d ids", op, n);
        goto done;
    }
    for (int64_t r = 0; r < dtable->rows; r++) where[r] = -1;
    int m = 0;
    for (int i = 0; i < n; i++) {
        int64_t r = (int64_t)ids[i] - vocab_start;
        packed[i] = -1;
        if (r < 0 || r >= dtable->rows) continue;
        if (where[r] < 0) {
            used[m] = (int)r;
            where[r] = m++;
        }
        packed[i] = where[r];
    }
    SRLM_CHECK_GOTO(stage_buffer(op, "dtable", m, cols, &s[1]), st, done);
    for (int k = 0; k < m; k++)
        convert(s[1].buf + (size_t)k * (size_t)cols, SRLM_F32, cols, ROW16(dtable, used[k]), SRLM_BF16, cols, 1,
                cols);
    st = cpu_embedding_backward(be, &s[1].f, &s[0].f, packed, n, 0);
    for (int k = 0; st == SRLM_OK && k < m; k++)
        convert(ROW16(dtable, used[k]), SRLM_BF16, cols, s[1].buf + (size_t)k * (size_t)cols, SRLM_F32, cols, 1,
                cols);
done:
    free(where);
    free(used);
    free(packed);
    return finish(s, 2, 0, st);
}

/* dw may be F32 or BF16 whatever x is (fp32 gradients of a bf16 model) */
static srlm_status op_rmsnorm_backward(srlm_backend *be, srlm_view *dx, srlm_view *dw, const srlm_view *dy,
                                       const srlm_view *x, const srlm_view *w, float eps, int accumulate) {
    const char *op = "rmsnorm_backward";
    SRLM_CHECK(want_dtype_of(op, "dx", dx, "x", x));
    SRLM_CHECK(want_dtype_of(op, "dy", dy, "x", x));
    SRLM_CHECK(want_dtype_of(op, "w", w, "x", x));
    SRLM_CHECK(want_float(op, "dw", dw));
    if (x->dtype == SRLM_F32 && dw->dtype == SRLM_F32)
        return cpu_rmsnorm_backward(be, dx, dw, dy, x, w, eps, accumulate);
    SRLM_CHECK(want_shape(op, "dx", dx, x->rows, x->cols));
    SRLM_CHECK(want_shape(op, "dy", dy, x->rows, x->cols));
    SRLM_CHECK(want_shape(op, "w", w, 1, x->cols));
    SRLM_CHECK(want_shape(op, "dw", dw, 1, x->cols));
    staged s[5] = {{0}};
    srlm_status st;
    STAGE(0, dy, 1);
    STAGE(1, x, 1);
    STAGE(2, w, 1);
    STAGE(3, dx, 0);
    STAGE(4, dw, accumulate);
    st = cpu_rmsnorm_backward(be, &s[3].f, &s[4].f, &s[0].f, &s[1].f, &s[2].f, eps, accumulate);
done:
    return finish(s, 5, 1u << 3 | 1u << 4, st);
}

static srlm_status op_rope_backward(srlm_backend *be, srlm_view *dx, const int *pos, int n_heads, int head_dim,
                                    float theta) {
    return rope_signed(be, "rope_backward", dx, pos, n_heads, head_dim, theta, 1);
}

static srlm_status op_attention_backward(srlm_backend *be, srlm_view *dq, srlm_view *dk, srlm_view *dv,
                                         const srlm_view *dout, const srlm_view *q, const srlm_view *k_cache,
                                         const srlm_view *v_cache, const srlm_attn_shape *s,
                                         const srlm_view *saved_out, const srlm_view *saved_lse) {
    const char *op = "attention_backward";
    SRLM_CHECK(want_dtype_of(op, "dq", dq, "q", q));
    SRLM_CHECK(want_dtype_of(op, "dout", dout, "q", q));
    if (saved_out) SRLM_CHECK(want_dtype_of(op, "saved_out", saved_out, "q", q));
    SRLM_CHECK(want_dtype_of(op, "k_cache", k_cache, "q", q));
    SRLM_CHECK(want_dtype_of(op, "v_cache", v_cache, "q", q));
    SRLM_CHECK(want_dtype_of(op, "dk", dk, "q", q));
    SRLM_CHECK(want_dtype_of(op, "dv", dv, "q", q));
    SRLM_CHECK(srlm_attn_saved_check(saved_out, saved_lse, s)); /* saved_lse F32 whatever q is */
    SRLM_CHECK(want_shape(op, "dq", dq, q->rows, q->cols));
    SRLM_CHECK(want_shape(op, "dout", dout, q->rows, q->cols));
    if (saved_out) SRLM_CHECK(want_shape(op, "saved_out", saved_out, q->rows, q->cols));
    SRLM_CHECK(want_shape(op, "v_cache", v_cache, k_cache->rows, k_cache->cols));
    SRLM_CHECK(want_shape(op, "dk", dk, k_cache->rows, k_cache->cols));
    SRLM_CHECK(want_shape(op, "dv", dv, k_cache->rows, k_cache->cols));
    SRLM_CHECK(want_attn_shapes(op, q, k_cache, s));
    if (q->dtype == SRLM_F32)
        return cpu_attention_backward(be, dq, dk, dv, dout, q, k_cache, v_cache, s, saved_out, saved_lse);
    const int64_t qc = (int64_t)s->n_heads * s->head_dim;
    const srlm_view qh = cols_of(q, qc), doh = cols_of(dout, qc), dqh = cols_of(dq, qc);
    packed_shape p = {{0}, NULL};
    staged sv[7] = {{0}}; /* q, dout, dq, k, v | dk, dv */
    srlm_status st;
    SRLM_CHECK_GOTO(pack_shape(op, s, &p), st, done);
    SRLM_CHECK_GOTO(stage_in(op, "q", &qh, 1, &sv[0]), st, done);
    SRLM_CHECK_GOTO(stage_in(op, "dout", &doh, 1, &sv[1]), st, done);
    SRLM_CHECK_GOTO(stage_in(op, "dq", &dqh, 0, &sv[2]), st, done);
    SRLM_CHECK_GOTO(stage_cache(op, "k_cache", k_cache, s, &p, 1, &sv[3]), st, done);
    SRLM_CHECK_GOTO(stage_cache(op, "v_cache", v_cache, s, &p, 1, &sv[4]), st, done);
    SRLM_CHECK_GOTO(stage_cache(op, "dk", dk, s, &p, 0, &sv[5]), st, done);
    SRLM_CHECK_GOTO(stage_cache(op, "dv", dv, s, &p, 0, &sv[6]), st, done);
    /* saved_out as it is: the fp32 op only checks that it comes with saved_lse */
    st = cpu_attention_backward(be, &sv[2].f, &sv[5].f, &sv[6].f, &sv[1].f, &sv[0].f, &sv[3].f, &sv[4].f, &p.s,
                                saved_out, saved_lse);
done:
    if (sv[5].buf) unstage_cache(&sv[5], s, &p, st == SRLM_OK);
    if (sv[6].buf) unstage_cache(&sv[6], s, &p, st == SRLM_OK);
    free(p.slot);
    return finish(sv, 5, 1u << 2, st);
}

static srlm_status op_swiglu_backward(srlm_backend *be, srlm_view *dgate, srlm_view *dup, const srlm_view *dout,
                                      const srlm_view *gate, const srlm_view *up) {
    const char *op = "swiglu_backward";
    SRLM_CHECK(want_dtype_of(op, "dgate", dgate, "dout", dout));
    SRLM_CHECK(want_dtype_of(op, "dup", dup, "dout", dout));
    SRLM_CHECK(want_dtype_of(op, "gate", gate, "dout", dout));
    SRLM_CHECK(want_dtype_of(op, "up", up, "dout", dout));
    if (dout->dtype == SRLM_F32) return cpu_swiglu_backward(be, dgate, dup, dout, gate, up);
    SRLM_CHECK(want_shape(op, "dgate", dgate, dout->rows, dout->cols));
    SRLM_CHECK(want_shape(op, "dup", dup, dout->rows, dout->cols));
    SRLM_CHECK(want_shape(op, "gate", gate, dout->rows, dout->cols));
    SRLM_CHECK(want_shape(op, "up", up, dout->rows, dout->cols));
    staged s[5] = {{0}};
    srlm_status st;
    STAGE(0, dout, 1);
    STAGE(1, gate, 1);
    STAGE(2, up, 1);
    STAGE(3, dgate, 0);
    STAGE(4, dup, 0);
    st = cpu_swiglu_backward(be, &s[3].f, &s[4].f, &s[0].f, &s[1].f, &s[2].f);
done:
    return finish(s, 5, 1u << 3 | 1u << 4, st);
}

const srlm_backend_ops cpu_ops = {
    .name = "cpu",
    .host_memory = 1,
    .destroy = cpu_destroy,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = op_upload,
    .download = op_download,
    .fill = op_fill,
    .matmul = op_matmul,
    .embedding = op_embedding,
    .rmsnorm = op_rmsnorm,
    .rope = op_rope,
    .kv_store = op_kv_store,
    .attention = op_attention,
    .swiglu = op_swiglu,
    .copy_rows = op_copy_rows,
    .copy = op_copy,
    .add = op_add,
    .add_rmsnorm = op_add_rmsnorm,
    .fill_cols = op_fill_cols,
    .row_logsumexp_target = op_row_logsumexp_target,
    .row_argmax = op_row_argmax,
    .dropout = op_dropout,
    .matmul_dx = op_matmul_dx,
    .matmul_dw = op_matmul_dw,
    .embedding_backward = op_embedding_backward,
    .rmsnorm_backward = op_rmsnorm_backward,
    .rope_backward = op_rope_backward,
    .attention_backward = op_attention_backward,
    .swiglu_backward = op_swiglu_backward,
    .logprob_backward = op_logprob_backward,
    .adamw = cpu_adamw, /* F32 only, as on the CUDA backend */
    .sum_squares = cpu_sum_squares,
    .scale = cpu_scale,
};
