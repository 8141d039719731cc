/* Shared by the CUDA backend's translation units: backend_cuda.c (creation,
 * memory, staging), backend_cuda_ops.c (forward ops, GEMMs),
 * backend_cuda_backward.c (backward ops) and backend_cuda_optim.c (optimizer).
 *
 * One stream carries everything, in order: parameter uploads, cuBLAS calls and
 * kernels. The host only waits where it must: in download, in the ops that
 * return host arrays (row_logsumexp_target, row_argmax), before it
 * rewrites a pinned staging buffer the stream has not read yet, and before it
 * frees or regrows device memory the stream may still be using.
 *
 * The device is selected (cudaSetDevice) once, on the thread that creates the
 * backend, and the CUDA runtime keeps that per thread: call the ops from that
 * thread (or run one rank per GPU with CUDA_VISIBLE_DEVICES, where it is 0). */
#ifndef SRLM_CUDA_INTERNAL_H
#define SRLM_CUDA_INTERNAL_H

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stddef.h>

#include "backend/backend.h"
#include "backend/stage_ring.h"
#include "cuda_check.h"

/* Slots of the op parameters' pinned ring (cuda_stage): the host waits only
 * for the copy it staged this many fills ago, so it can run that far ahead of
 * the GPU (a decode step stages a few arrays per layer, and shares them:
 * backend/stage_ring.h). */
enum { CUDA_STAGING_SLOTS = SRLM_STAGE_SLOTS };

/* Recorded steps (backend.h), kept as CUDA graphs: backend_cuda_steps.c. */
enum { CUDA_STEPS_KEPT = 16 };

typedef struct {
    uint64_t        key;
    unsigned long   epoch;  /* cuda_steps.epoch when recorded: memory since moved drops it */
    unsigned long   used;   /* clock of its last replay: the least recent goes first */
    cudaGraphExec_t exec;   /* NULL: an empty place */
} cuda_step;

typedef struct {
    char          *host;      /* pinned: the step's host arrays, as the caller wrote them */
    char          *dev;       /* their device copy, the first node of every recorded step */
    size_t         cap, bytes; /* capacity, and the extent the last step_inputs asked for */
    cudaEvent_t    read;      /* recorded after each replay: the area is free again once it ran */
    int            recording; /* the stream is being captured ... */
    uint64_t       key;       /* ... for this key */
    char           why[200];  /* the first reason this recording cannot be kept ("" none) */
    size_t         ws_need;   /* workspace a recording needed: grown once the capture ends */
    unsigned long  epoch;     /* counts frees and moves of memory a recorded step may use */
    unsigned long  clock;
    cuda_step      kept[CUDA_STEPS_KEPT];
    void         **freed;     /* device memory freed while recording: released at step_end */
    int            n_freed, cap_freed;
} cuda_steps;

typedef struct {
    int            device;
    cudaStream_t   stream;
    cublasHandle_t blas;
    void          *blas_ws;   /* cuBLAS workspace, set once (cublasSetWorkspace) */
    cudaEvent_t    staged;    /* recorded after the last copy that reads `host` */
    void          *host;      /* pinned: upload/download chunks, host-bound results */
    size_t         host_cap;
    srlm_stage_ring ring;     /* op parameters: its host slots are pinned */
    char          *dev_ring;  /* the device mirror of each slot (CUDA_STAGING_SLOTS x ring.slot_bytes) */
    cudaEvent_t    ring_read[CUDA_STAGING_SLOTS]; /* recorded after the copy that reads each slot */
    int            share;     /* a recent slot with the same parameters serves again (SRLM_CUDA_STAGE_SHARE) */
    long           stage_fills, stage_shares; /* cuda_stage calls that copied, and that shared a slot */
    void          *dev;       /* device memory for the results an op brings back (cuda_fetch) */
    size_t         dev_cap;
    void          *ws;        /* kernel workspaces (attention, rmsnorm backward) */
    size_t         ws_cap;
    cuda_steps     steps;     /* recorded steps (backend_cuda_steps.c) */
} cuda_impl;

/* cuBLAS's functions, from libcublas opened at the first CUDA backend (not
 * linked: core/dynlib.h says why). */
typedef struct {
    __typeof__(&cublasCreate) create;
    __typeof__(&cublasDestroy) destroy;
    __typeof__(&cublasSetStream) set_stream;
    __typeof__(&cublasSetWorkspace) set_workspace;
    __typeof__(&cublasSetAtomicsMode) set_atomics_mode;
    __typeof__(&cublasSetPointerMode) set_pointer_mode;
    __typeof__(&cublasSetMathMode) set_math_mode;
    __typeof__(&cublasGemmEx) gemm_ex;
    __typeof__(&cublasGetStatusString) status_string;
} cuda_blas_api;
extern cuda_blas_api cuda_blas;
srlm_status cuda_blas_load(void); /* idempotent */

/* A cuBLAS call through cuda_blas: on failure, the call, cuBLAS's own words
 * for the status and file:line. */
#define CUDA_BLAS_TRY(call)                                                               \
    do {                                                                                  \
        cublasStatus_t b_ = (call);                                                       \
        if (b_ != CUBLAS_STATUS_SUCCESS)                                                  \
            return srlm_error_at(__FILE__, __LINE__, SRLM_FAILED, "%s: %s (%s:%d)", #call, \
                                 cuda_blas.status_string(b_), __FILE__, __LINE__);        \
    } while (0)

static inline cuda_impl *cuda_of(srlm_backend *be) { return (cuda_impl *)be->impl; }
static inline void *cuda_stream(srlm_backend *be) { return (void *)cuda_of(be)->stream; }

/* One host array an op hands to its kernels. */
typedef struct {
    const void *src;
    size_t      bytes;
} cuda_in;

/* Copy n (<= SRLM_STAGE_MAX_IN) host arrays into the next slot of the pinned
 * ring and from there, in one transfer on the stream, to that slot's device
 * mirror; or, where one of the last few slots holds exactly these arrays,
 * use its mirror without copying. dev[i] gets the device address of in[i]
 * (read-only for the kernels: a later op may share it), and dev[n] that of an
 * out_bytes area for results (device memory the kernels may write; cuda_fetch
 * brings it back; the next op's kernels may overwrite it). A mirror is
 * rewritten only by a transfer queued after every op that used it. The host
 * waits only while the slot's previous transfer (a ring's length of fills
 * ago) has not run yet. */
srlm_status cuda_stage(srlm_backend *be, const cuda_in *in, int n, size_t out_bytes, void **dev);
/* Bring `bytes` of device results at `dev_src` into pinned staging and wait for
 * the stream; *host points at them until the next cuda_fetch, upload or
 * download. */
srlm_status cuda_fetch(srlm_backend *be, const void *dev_src, size_t bytes, const void **host);
/* A device workspace of at least `bytes` (grown geometrically, never shrunk). */
srlm_status cuda_workspace(srlm_backend *be, size_t bytes, void **ws);

/* Recorded steps (backend_cuda_steps.c): the ops table's four step ops, the
 * teardown, and what the rest of the backend asks while a step is recorded. */
srlm_status cuda_steps_init(cuda_impl *c);
/* Ends a capture an error left open (teardown: before the stream is waited
 * for, which a capturing stream refuses), then releases everything. */
void        cuda_steps_close_capture(cuda_impl *c);
void        cuda_steps_destroy(cuda_impl *c);
/* Frees device memory p, or, while a step is recorded (a capture can neither
 * wait for the stream nor free), fails the recording and frees p when it
 * ends. */
void        cuda_steps_free(cuda_impl *c, void *p);
void       *cuda_step_inputs(srlm_backend *be, size_t bytes);
srlm_status cuda_step_begin(srlm_backend *be, uint64_t key);
srlm_status cuda_step_end(srlm_backend *be, int keep);
srlm_status cuda_step_replay(srlm_backend *be, uint64_t key, int *ran);
/* While recording, an op may not wait for the stream, allocate, or bring
 * results back: this notes why the recording cannot be kept and returns the
 * error the op returns (SRLM_FAILED). */
srlm_status cuda_step_refuse(cuda_impl *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Memory a recorded step may use was freed or moved: drop them all. */
static inline void cuda_steps_moved(cuda_impl *c) { c->steps.epoch++; }
/* A host array of `bytes` at src in the step area: its device copy's address,
 * or NULL (not in the area, or not 256-byte aligned within it). */
void       *cuda_step_array(cuda_impl *c, const void *src, size_t bytes);

/* Argument checks; messages name the op and both shapes (SRLM_BAD_INPUT). */
srlm_status cuda_check_dtype(const char *op, const char *name, const srlm_view *v);
srlm_status cuda_check_same(const char *op, const char *an, const srlm_view *a, const char *bn,
                            const srlm_view *b);

/* The per-sequence arrays of an attention call staged on the device, plus
 * max_len computed on the host; checks that the slots and new rows fit the cache. */
#include "attention.h"
srlm_status cuda_attn_stage(srlm_backend *be, const char *op, const srlm_view *cache, const srlm_attn_shape *s,
                            srlm_cuda_attn_shape *cs);

/* forward ops (backend_cuda_ops.c) */
srlm_status cuda_matmul(srlm_backend *be, srlm_view *y, const srlm_view *x, const srlm_view *w,
                        int accumulate);
srlm_status cuda_embedding(srlm_backend *be, srlm_view *out, const srlm_view *table, const int *ids,
                           int n, int64_t vocab_start);
srlm_status cuda_rmsnorm(srlm_backend *be, srlm_view *y, const srlm_view *x, const srlm_view *w,
                         float eps);
srlm_status cuda_rope(srlm_backend *be, srlm_view *x, const int *pos, int n_heads, int head_dim,
                      float theta);
/* rope and rope_backward: positions staged, then the kernel with `sign` */
srlm_status cuda_rope_signed(srlm_backend *be, const char *op, srlm_view *x, const int *pos,
                             int n_heads, int head_dim, float theta, float sign);
srlm_status cuda_kv_store(srlm_backend *be, srlm_view *cache, const srlm_view *kv,
                          const srlm_attn_shape *s);
srlm_status cuda_attention(srlm_backend *be, srlm_view *out, const srlm_view *q,
                           const srlm_view *k_cache, const srlm_view *v_cache,
                           const srlm_attn_shape *s, srlm_view *lse);
srlm_status cuda_swiglu(srlm_backend *be, srlm_view *out, const srlm_view *gate, const srlm_view *up);
srlm_status cuda_copy_rows(srlm_backend *be, srlm_view *dst, const srlm_view *src,
                           const int *src_rows, int n);
srlm_status cuda_copy(srlm_backend *be, srlm_view *dst, const srlm_view *src);
srlm_status cuda_add(srlm_backend *be, srlm_view *y, const srlm_view *x);
srlm_status cuda_add_rmsnorm(srlm_backend *be, srlm_view *x, srlm_view *y, const srlm_view *r, const srlm_view *w,
                             float eps);
srlm_status cuda_fill(srlm_backend *be, srlm_view *v, float value);
srlm_status cuda_fill_cols(srlm_backend *be, srlm_view *v, int64_t c0, float value);
srlm_status cuda_row_logsumexp_target(srlm_backend *be, const srlm_view *logits, const int *targets,
                                      int64_t vocab_start, float *mx, float *se, float *tl);
srlm_status cuda_row_argmax(srlm_backend *be, const srlm_view *logits, int *idx, float *val);
srlm_status cuda_sample(srlm_backend *be, const srlm_view *logits, const struct srlm_sampling *cfg, const float *u,
                        int *token);
srlm_status cuda_dropout(srlm_backend *be, srlm_view *x, float p, uint64_t key);

/* backward ops (backend_cuda_backward.c) */
srlm_status cuda_matmul_dx(srlm_backend *be, srlm_view *dx, const srlm_view *dy, const srlm_view *w,
                           int accumulate);
srlm_status cuda_matmul_dw(srlm_backend *be, srlm_view *dw, const srlm_view *dy, const srlm_view *x,
                           int accumulate);
srlm_status cuda_embedding_backward(srlm_backend *be, srlm_view *dtable, const srlm_view *dx,
                                    const int *ids, int n, int64_t vocab_start);
srlm_status cuda_rmsnorm_backward(srlm_backend *be, srlm_view *dx, srlm_view *dw, const srlm_view *dy,
                                  const srlm_view *x, const srlm_view *w, float eps, int accumulate);
srlm_status cuda_rope_backward(srlm_backend *be, srlm_view *dx, const int *pos, int n_heads,
                               int head_dim, float theta);
srlm_status cuda_attention_backward(srlm_backend *be, srlm_view *dq, srlm_view *dk, srlm_view *dv,
                                    const srlm_view *dout, const srlm_view *q,
                                    const srlm_view *k_cache, const srlm_view *v_cache,
                                    const srlm_attn_shape *s, const srlm_view *saved_out,
                                    const srlm_view *saved_lse);
srlm_status cuda_swiglu_backward(srlm_backend *be, srlm_view *dgate, srlm_view *dup,
                                 const srlm_view *dout, const srlm_view *gate, const srlm_view *up);
srlm_status cuda_logprob_backward(srlm_backend *be, srlm_view *logits, const float *mx,
                                  const float *se, const int *targets, int64_t vocab_start,
                                  const float *dlogp);

/* optimizer ops (backend_cuda_optim.c) */
srlm_status cuda_adamw(srlm_backend *be, srlm_view *param, const srlm_view *grad, srlm_view *m, srlm_view *v,
                       srlm_view *work, const srlm_adamw_consts *c);
srlm_status cuda_sum_squares(srlm_backend *be, const srlm_view *xs, int n, double *out);
srlm_status cuda_scale(srlm_backend *be, srlm_view *x, float s);

/* The GEMM both matmul ops and matmul_dw share (backend_cuda_ops.c): column-major
 * C (m x n) = alpha op(A) op(B) + beta C, A and B of one dtype, C F32 or theirs. */
srlm_status cuda_gemm(srlm_backend *be, const char *op, cublasOperation_t ta, cublasOperation_t tb,
                      int64_t m, int64_t n, int64_t k, const srlm_view *a, const srlm_view *b,
                      float beta, srlm_view *c);

#endif
