/* The guarded CPU backend ("cpu_guarded"): the CPU backend's ops, but every
 * view lives in pages that are unreadable outside the ops (mprotect PROT_NONE),
 * and the ops table says host_memory = 0, as a GPU's does. Code that reads or
 * writes view.data on the host instead of going through the ops (upload,
 * download, the compute ops) dies with SIGSEGV at the faulting line, so the
 * device-memory paths of the trainer, the engine and the model are tested on a
 * machine with no GPU; the arithmetic is the CPU backend's, so results must be
 * bit-identical to backend cpu. Slow (two mprotect calls per op and
 * allocation): for tests, not for runs.
 *
 * With SRLM_GUARDED_DEVICE_COMM=1 in the environment it also offers a device
 * communicator (device_comm), as the CUDA backend offers NCCL: MPI on the
 * guarded pages, opened around each call. The model and trainer then take
 * their device-collective paths (collectives on the views themselves, ZeRO-1's
 * in-place gathers), which otherwise only run with NCCL on GPUs.
 *
 * Recorded steps (backend.h) are a tape of op calls (guarded_steps.c), as
 * strict as the CUDA backend's graphs, so the model's recorded decode path is
 * tested here too: while recording, the decode forward's ops are stored
 * instead of run, and every other op fails the recording. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "backend/backend.h"
#include "backend/cpu/cpu_internal.h"
#include "backend/cpu/guarded_steps.h"
#include "dist/comm.h"
#include "generate/sampler.h"

typedef struct {
    void  *base;
    size_t bytes;
} guarded_block;

typedef struct {
    srlm_backend   be; /* first: the ops receive &guard->be */
    guarded_block *blocks;
    int            n_blocks, cap_blocks;
    guarded_steps  steps;
} guard;

static guard *guard_of(srlm_backend *be) { return (guard *)be; }

static srlm_status protect_all(srlm_backend *be, int prot) {
    guard *g = guard_of(be);
    for (int i = 0; i < g->n_blocks; i++)
        if (mprotect(g->blocks[i].base, g->blocks[i].bytes, prot) != 0)
            return SRLM_ERR(SRLM_FAILED, "cpu_guarded backend: mprotect of %zu bytes failed", g->blocks[i].bytes);
    return SRLM_OK;
}

static srlm_status guarded_alloc(srlm_backend *be, srlm_view *v, srlm_dtype dtype, int64_t rows, int64_t cols,
                                 const char *what) {
    guard *g = guard_of(be);
    if (g->steps.recording) return guarded_steps_refuse(&g->steps, "alloc");
    if (dtype != SRLM_F32 && dtype != SRLM_BF16)
        return SRLM_ERR(SRLM_BAD_INPUT, "cpu_guarded backend: cannot allocate %s as %s: only F32 and BF16", what,
                        srlm_dtype_name(dtype));
    if (rows < 0 || cols < 0 || (cols && (size_t)rows > SIZE_MAX / (size_t)cols / 4))
        return SRLM_ERR(SRLM_FAILED, "cpu_guarded backend: size overflow allocating %s", what);
    size_t bytes = (size_t)rows * (size_t)cols * srlm_dtype_size(dtype);
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t mapped = (bytes + page - 1) / page * page;
    if (mapped == 0) mapped = page;
    if (g->n_blocks == g->cap_blocks) {
        int cap = g->cap_blocks ? 2 * g->cap_blocks : 16;
        guarded_block *grown = realloc(g->blocks, sizeof *grown * (size_t)cap);
        if (!grown) return SRLM_ERR(SRLM_FAILED, "out of memory allocating %s", what);
        g->blocks = grown;
        g->cap_blocks = cap;
    }
    /* fresh anonymous pages are zero, like the CPU backend's memory */
    void *p = mmap(NULL, mapped, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return SRLM_ERR(SRLM_FAILED, "out of memory allocating %s (%.1f MiB)", what, bytes / 1048576.0);
    g->blocks[g->n_blocks++] = (guarded_block){p, mapped};
    *v = (srlm_view){p, dtype, rows, cols, cols};
    return SRLM_OK;
}

static void guarded_free(srlm_backend *be, srlm_view *v) {
    guard *g = guard_of(be);
    /* a later alloc may hand out the same address with another layout */
    guarded_steps_drop(&g->steps, "a view was freed");
    for (int i = 0; i < g->n_blocks; i++)
        if (g->blocks[i].base == v->data) {
            munmap(g->blocks[i].base, g->blocks[i].bytes);
            g->blocks[i] = g->blocks[--g->n_blocks];
            break;
        }
    v->data = NULL;
}

static void guarded_destroy(srlm_backend *be) {
    guard *g = guard_of(be);
    for (int i = 0; i < g->n_blocks; i++) munmap(g->blocks[i].base, g->blocks[i].bytes);
    free(g->blocks);
    guarded_steps_free(&g->steps);
    free(g);
}

static const srlm_backend_ops *cpu;

/* One wrapper per op: open the pages, run the CPU op, close them again. */
#define GUARDED_RUN(name, args)                                      \
    SRLM_CHECK(protect_all(be, PROT_READ | PROT_WRITE));             \
    srlm_status st = cpu->name args;                                 \
    srlm_status closed = protect_all(be, PROT_NONE);                 \
    return st != SRLM_OK ? st : closed;

/* An op a recorded step cannot hold (it brings results to the host, or a
 * decode step does not use it): it fails a recording in progress. */
#define GUARDED(name, params, args)                                  \
    static srlm_status guarded_##name params {                       \
        guarded_steps *steps = &guard_of(be)->steps;                 \
        if (steps->recording) return guarded_steps_refuse(steps, #name); \
        GUARDED_RUN(name, args)                                      \
    }

/* A decode step's op: recorded instead of run while recording (rec_args are
 * guarded_record_<name>'s, steps first). */
#define GUARDED_STEP(name, params, args, rec_args)                   \
    static srlm_status guarded_##name params {                       \
        guarded_steps *steps = &guard_of(be)->steps;                 \
        if (steps->recording) return guarded_record_##name rec_args; \
        GUARDED_RUN(name, args)                                      \
    }

GUARDED(upload, (srlm_backend *be, srlm_view *dst, const float *src), (be, dst, src))
GUARDED(download, (srlm_backend *be, float *dst, const srlm_view *src), (be, dst, src))
GUARDED(fill, (srlm_backend *be, srlm_view *v, float value), (be, v, value))
GUARDED_STEP(matmul, (srlm_backend *be, srlm_view *y, const srlm_view *x, const srlm_view *w, int acc),
             (be, y, x, w, acc), (steps, y, x, w, acc))
GUARDED_STEP(embedding, (srlm_backend *be, srlm_view *out, const srlm_view *table, const int *ids, int n, int64_t vs),
             (be, out, table, ids, n, vs), (steps, out, table, ids, n, vs))
GUARDED_STEP(rmsnorm, (srlm_backend *be, srlm_view *y, const srlm_view *x, const srlm_view *w, float eps),
             (be, y, x, w, eps), (steps, y, x, w, eps))
GUARDED_STEP(rope, (srlm_backend *be, srlm_view *x, const int *pos, int nh, int hd, float theta),
             (be, x, pos, nh, hd, theta), (steps, x, pos, nh, hd, theta))
GUARDED_STEP(kv_store, (srlm_backend *be, srlm_view *cache, const srlm_view *kv, const srlm_attn_shape *s),
             (be, cache, kv, s), (steps, cache, kv, s))
GUARDED_STEP(attention,
             (srlm_backend *be, srlm_view *out, const srlm_view *q, const srlm_view *k, const srlm_view *v,
              const srlm_attn_shape *s, srlm_view *lse),
             (be, out, q, k, v, s, lse), (steps, out, q, k, v, s, lse))
GUARDED_STEP(swiglu, (srlm_backend *be, srlm_view *out, const srlm_view *gate, const srlm_view *up),
             (be, out, gate, up), (steps, out, gate, up))
GUARDED_STEP(copy_rows, (srlm_backend *be, srlm_view *dst, const srlm_view *src, const int *rows, int n),
             (be, dst, src, rows, n), (steps, dst, src, rows, n))
GUARDED_STEP(copy, (srlm_backend *be, srlm_view *dst, const srlm_view *src), (be, dst, src), (steps, dst, src))
GUARDED_STEP(add, (srlm_backend *be, srlm_view *y, const srlm_view *x), (be, y, x), (steps, y, x))
GUARDED_STEP(add_rmsnorm,
             (srlm_backend *be, srlm_view *x, srlm_view *y, const srlm_view *r, const srlm_view *w, float eps),
             (be, x, y, r, w, eps), (steps, x, y, r, w, eps))
GUARDED_STEP(fill_cols, (srlm_backend *be, srlm_view *v, int64_t c0, float value), (be, v, c0, value),
             (steps, v, c0, value))
GUARDED(row_logsumexp_target,
        (srlm_backend *be, const srlm_view *logits, const int *targets, int64_t vs, float *mx, float *se,
         float *tl),
        (be, logits, targets, vs, mx, se, tl))
GUARDED(row_argmax, (srlm_backend *be, const srlm_view *logits, int *idx, float *val), (be, logits, idx, val))
GUARDED(dropout, (srlm_backend *be, srlm_view *x, float p, uint64_t key), (be, x, p, key))
GUARDED(matmul_dx, (srlm_backend *be, srlm_view *dx, const srlm_view *dy, const srlm_view *w, int acc),
        (be, dx, dy, w, acc))
GUARDED(matmul_dw, (srlm_backend *be, srlm_view *dw, const srlm_view *dy, const srlm_view *x, int acc),
        (be, dw, dy, x, acc))
GUARDED(embedding_backward,
        (srlm_backend *be, srlm_view *dtable, const srlm_view *dx, const int *ids, int n, int64_t vs),
        (be, dtable, dx, ids, n, vs))
GUARDED(rmsnorm_backward,
        (srlm_backend *be, srlm_view *dx, srlm_view *dw, const srlm_view *dy, const srlm_view *x,
         const srlm_view *w, float eps, int acc),
        (be, dx, dw, dy, x, w, eps, acc))
GUARDED(rope_backward, (srlm_backend *be, srlm_view *dx, const int *pos, int nh, int hd, float theta),
        (be, dx, pos, nh, hd, theta))
GUARDED(attention_backward,
        (srlm_backend *be, srlm_view *dq, srlm_view *dk, srlm_view *dv, const srlm_view *dout, const srlm_view *q,
         const srlm_view *k, const srlm_view *v, const srlm_attn_shape *s, const srlm_view *so,
         const srlm_view *sl),
        (be, dq, dk, dv, dout, q, k, v, s, so, sl))
GUARDED(swiglu_backward,
        (srlm_backend *be, srlm_view *dgate, srlm_view *dup, const srlm_view *dout, const srlm_view *gate,
         const srlm_view *up),
        (be, dgate, dup, dout, gate, up))
GUARDED(logprob_backward,
        (srlm_backend *be, srlm_view *logits, const float *mx, const float *se, const int *targets, int64_t vs,
         const float *dlogp),
        (be, logits, mx, se, targets, vs, dlogp))

GUARDED(adamw,
        (srlm_backend *be, srlm_view *param, const srlm_view *grad, srlm_view *m, srlm_view *v, srlm_view *work,
         const srlm_adamw_consts *c),
        (be, param, grad, m, v, work, c))
GUARDED(sum_squares, (srlm_backend *be, const srlm_view *xs, int n, double *out), (be, xs, n, out))
GUARDED(scale, (srlm_backend *be, srlm_view *x, float s), (be, x, s))

/* Sampling where the logits are, as the CUDA backend does, so that the
 * engine's path for a backend that samples runs here too: srlm_sample on each
 * row, which is what the host does with the downloaded logits (the plain CPU
 * backend has no sample op, so the two backends' runs compare the paths). */
static srlm_status guarded_sample(srlm_backend *be, const srlm_view *logits, const struct srlm_sampling *cfg,
                                  const float *u, int *token) {
    guarded_steps *steps = &guard_of(be)->steps;
    if (steps->recording) return guarded_steps_refuse(steps, "sample");
    if (logits->dtype != SRLM_F32 && logits->dtype != SRLM_BF16)
        return SRLM_ERR(SRLM_BAD_INPUT, "cpu_guarded backend: sample: logits are %s; F32 or BF16",
                        srlm_dtype_name(logits->dtype));
    if (logits->rows == 0) return SRLM_OK;
    /* the draws are unread, and may be NULL, only when sampling is greedy */
    if (!u && cfg->temperature != 0.0f)
        return SRLM_ERR(SRLM_BAD_INPUT, "cpu_guarded backend: sample: no uniform draws for temperature %g",
                        (double)cfg->temperature);
    const int vocab = (int)logits->cols;
    srlm_sampler *s = NULL;
    float *row = malloc(sizeof(float) * (size_t)vocab);
    srlm_status st = row ? srlm_sampler_new(&s, vocab) : SRLM_ERR(SRLM_FAILED, "out of memory sampling");
    if (st == SRLM_OK) st = protect_all(be, PROT_READ | PROT_WRITE);
    for (int64_t i = 0; i < logits->rows && st == SRLM_OK; i++) {
        const char *src = (const char *)logits->data + (size_t)(i * logits->stride) * srlm_dtype_size(logits->dtype);
        srlm_convert_to_f32(row, src, logits->dtype, (size_t)vocab);
        st = srlm_sample(s, row, vocab, cfg, u ? u[i] : 0.0f, &token[i], NULL);
        if (st != SRLM_OK) srlm_error_context("sampling: row %lld of the logits", (long long)i);
    }
    srlm_status closed = protect_all(be, PROT_NONE);
    srlm_sampler_free(s);
    free(row);
    return st != SRLM_OK ? st : closed;
}

/* ---- the device communicator: MPI on the guarded pages ---- */

typedef struct {
    srlm_backend *be;
    srlm_comm    *mpi; /* the caller's, not owned */
} guarded_comm;

static srlm_comm *inner_of(srlm_comm *c) { return ((guarded_comm *)c->impl)->mpi; }
static srlm_backend *be_of(srlm_comm *c) { return ((guarded_comm *)c->impl)->be; }

/* One wrapper per collective: open the pages, run MPI's, close them again. */
/* A collective would run at once, not at replay: it fails a recording. */
#define GUARDED_COMM(name, params, args)                             \
    static srlm_status gcomm_##name params {                         \
        srlm_comm *in = inner_of(c);                                 \
        guarded_steps *steps = &guard_of(be_of(c))->steps;           \
        if (steps->recording) return guarded_steps_refuse(steps, #name); \
        SRLM_CHECK(protect_all(be_of(c), PROT_READ | PROT_WRITE));   \
        srlm_status st = in->ops->name args;                         \
        srlm_status closed = protect_all(be_of(c), PROT_NONE);       \
        return st != SRLM_OK ? st : closed;                          \
    }

GUARDED_COMM(allreduce, (srlm_comm *c, void *buf, size_t n, srlm_comm_dtype t, srlm_reduce_op op),
             (in, buf, n, t, op))
GUARDED_COMM(reduce_scatter_f32, (srlm_comm *c, const float *send, float *recv, size_t n), (in, send, recv, n))
GUARDED_COMM(allgather, (srlm_comm *c, const void *send, void *recv, size_t n, srlm_comm_dtype t),
             (in, send, recv, n, t))
GUARDED_COMM(gatherv_bytes, (srlm_comm *c, const void *send, size_t sb, void *recv, const size_t *rb, int root),
             (in, send, sb, recv, rb, root))
GUARDED_COMM(broadcast, (srlm_comm *c, void *buf, size_t bytes, int root), (in, buf, bytes, root))
GUARDED_COMM(send, (srlm_comm *c, const void *buf, size_t bytes, int dest, int tag), (in, buf, bytes, dest, tag))
GUARDED_COMM(recv, (srlm_comm *c, void *buf, size_t bytes, int src, int tag), (in, buf, bytes, src, tag))
GUARDED_COMM(barrier, (srlm_comm *c), (in))

static void gcomm_destroy(srlm_comm *c) { free(c->impl); }

static const srlm_comm_ops GUARDED_COMM_OPS = {
    .name = "MPI on guarded memory",
    .allreduce = gcomm_allreduce,
    .reduce_scatter_f32 = gcomm_reduce_scatter_f32,
    .allgather = gcomm_allgather,
    .gatherv_bytes = gcomm_gatherv_bytes,
    .broadcast = gcomm_broadcast,
    .send = gcomm_send,
    .recv = gcomm_recv,
    .barrier = gcomm_barrier,
    .split = NULL,
    .destroy = gcomm_destroy,
};

static srlm_status guarded_device_comm(srlm_backend *be, srlm_comm *mpi, srlm_comm **out) {
    *out = NULL;
    guarded_steps *steps = &guard_of(be)->steps;
    if (steps->recording) return guarded_steps_refuse(steps, "device_comm");
    const char *on = getenv("SRLM_GUARDED_DEVICE_COMM");
    if (!on || strcmp(on, "1") != 0 || !mpi) return SRLM_OK; /* none: callers stage through the host */
    srlm_comm *c = calloc(1, sizeof *c);
    guarded_comm *g = calloc(1, sizeof *g);
    if (!c || !g) {
        free(c);
        free(g);
        return SRLM_ERR(SRLM_FAILED, "cpu_guarded backend: out of memory for a device communicator");
    }
    *g = (guarded_comm){be, mpi};
    *c = (srlm_comm){&GUARDED_COMM_OPS, srlm_comm_rank(mpi), srlm_comm_size(mpi), g};
    *out = c;
    return SRLM_OK;
}

/* ---- recorded steps: the tape's bookkeeping is guarded_steps.c's ---- */

static void *guarded_step_inputs(srlm_backend *be, size_t bytes) {
    return guarded_steps_inputs(&guard_of(be)->steps, bytes);
}

static srlm_status guarded_step_begin(srlm_backend *be, uint64_t key) {
    return guarded_steps_begin(&guard_of(be)->steps, key);
}

static srlm_status guarded_step_end(srlm_backend *be, int keep) {
    return guarded_steps_end(&guard_of(be)->steps, keep);
}

/* The pages open once around the whole replay, as they do around one op. */
static srlm_status guarded_step_replay(srlm_backend *be, uint64_t key, int *ran) {
    const guarded_tape *t;
    *ran = 0;
    SRLM_CHECK(guarded_steps_find(&guard_of(be)->steps, key, &t));
    if (!t) return SRLM_OK;
    *ran = 1;
    SRLM_CHECK(protect_all(be, PROT_READ | PROT_WRITE));
    srlm_status st = guarded_steps_run(t, be, cpu);
    srlm_status closed = protect_all(be, PROT_NONE);
    return st != SRLM_OK ? st : closed;
}

static const srlm_backend_ops GUARDED_OPS = {
    .name = "cpu_guarded",
    .host_memory = 0,
    .destroy = guarded_destroy,
    .device_comm = guarded_device_comm,
    .sample = guarded_sample,
    .step_inputs = guarded_step_inputs,
    .step_begin = guarded_step_begin,
    .step_end = guarded_step_end,
    .step_replay = guarded_step_replay,
    .alloc = guarded_alloc,
    .free = guarded_free,
    .upload = guarded_upload,
    .download = guarded_download,
    .fill = guarded_fill,
    .matmul = guarded_matmul,
    .embedding = guarded_embedding,
    .rmsnorm = guarded_rmsnorm,
    .rope = guarded_rope,
    .kv_store = guarded_kv_store,
    .attention = guarded_attention,
    .swiglu = guarded_swiglu,
    .copy_rows = guarded_copy_rows,
    .copy = guarded_copy,
    .add = guarded_add,
    .add_rmsnorm = guarded_add_rmsnorm,
    .fill_cols = guarded_fill_cols,
    .row_logsumexp_target = guarded_row_logsumexp_target,
    .row_argmax = guarded_row_argmax,
    .dropout = guarded_dropout,
    .matmul_dx = guarded_matmul_dx,
    .matmul_dw = guarded_matmul_dw,
    .embedding_backward = guarded_embedding_backward,
    .rmsnorm_backward = guarded_rmsnorm_backward,
    .rope_backward = guarded_rope_backward,
    .attention_backward = guarded_attention_backward,
    .swiglu_backward = guarded_swiglu_backward,
    .logprob_backward = guarded_logprob_backward,
    .adamw = guarded_adamw,
    .sum_squares = guarded_sum_squares,
    .scale = guarded_scale,
};

srlm_status srlm_backend_cpu_guarded_new(srlm_backend **out, int threads) {
    *out = NULL;
    srlm_backend *plain;
    SRLM_CHECK(srlm_backend_cpu_new(&plain, threads)); /* sets the thread counts */
    cpu = plain->ops;
    threads = plain->threads;
    srlm_backend_free(plain);
    guard *g = calloc(1, sizeof *g);
    if (!g) return SRLM_ERR(SRLM_FAILED, "out of memory creating the cpu_guarded backend");
    g->be.ops = &GUARDED_OPS;
    g->be.threads = threads;
    *out = &g->be;
    return SRLM_OK;
}
