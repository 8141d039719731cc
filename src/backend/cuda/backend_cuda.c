/* The CUDA backend: the ops table on one GPU, one stream and one cuBLAS handle.
 * Every view is device memory (SRLM_F32 or SRLM_BF16); the math is in the
 * kernels (kernels/, one .cu per family) and in cuBLAS (backend_cuda_ops.c).
 *
 * Host <-> device: upload and download go through a pinned staging buffer in
 * chunks, and convert fp32 <-> bf16 on the host there (srlm_convert_from_f32 /
 * srlm_convert_to_f32, the CPU's rounding), so no device scratch is needed and
 * a bf16 weight crosses PCIe at half size. The host index arrays of the ops
 * (ids, positions, targets, slots, ...) go through a ring of pinned slots to a
 * device mirror (cuda_stage), so that the host can queue many ops ahead of
 * the GPU; results the ops table returns in host memory come back through the
 * staging buffer (cuda_fetch), the only places besides download where the host
 * waits for the GPU. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/cuda_internal.h"
#ifdef SRLM_HAVE_NCCL
#include "dist/comm_nccl.h"
#endif
#include "core/dtype.h"
#include "core/log.h"

enum {
    BLAS_WORKSPACE = 32 << 20, /* cuBLAS's recommendation for Hopper; plenty for Ampere */
    CHUNK = 64 << 20,          /* bytes per upload/download chunk through staging */
    ALIGN = 256,               /* of every staged array: any kernel's vector loads are fine */
    MIN_GROW = 1 << 20,
};

static size_t align_up(size_t n) { return (n + ALIGN - 1) / ALIGN * ALIGN; }
_Static_assert((int)ALIGN == (int)SRLM_STAGE_ALIGN, "staged arrays and views share one alignment");
static size_t grown(size_t cap, size_t need) {
    size_t c = cap * 2 > need ? cap * 2 : need;
    return c > MIN_GROW ? c : MIN_GROW;
}

/* ---- creation and teardown ---- */

static void cuda_destroy(srlm_backend *be) {
    if (!be) return;
    cuda_impl *c = cuda_of(be);
    if (c) {
        /* teardown cannot report errors: release what exists, in reverse order */
        cudaSetDevice(c->device);
        cuda_steps_close_capture(c); /* a capturing stream cannot be waited for */
        if (c->stream) cudaStreamSynchronize(c->stream);
        cuda_steps_destroy(c);
        if (c->blas) cuda_blas.destroy(c->blas);
        cudaFree(c->blas_ws);
        cudaFree(c->dev);
        cudaFree(c->dev_ring);
        cudaFree(c->ws);
        if (c->host) cudaFreeHost(c->host);
        if (c->ring.host) cudaFreeHost(c->ring.host);
        for (int i = 0; i < CUDA_STAGING_SLOTS; i++)
            if (c->ring_read[i]) cudaEventDestroy(c->ring_read[i]);
        if (c->staged) cudaEventDestroy(c->staged);
        if (c->stream) cudaStreamDestroy(c->stream);
        cudaGetLastError(); /* leave no error behind for the next caller */
        free(c);
    }
    free(be);
}

static srlm_status cuda_init(cuda_impl *c) {
    srlm_stage_ring_init(&c->ring, NULL, 0);
    /* SRLM_CUDA_STAGE_SHARE=0 copies every op's parameters anew (to measure
     * what sharing saves; benchmarks/gpu/run.sh times decode both ways) */
    const char *share = getenv("SRLM_CUDA_STAGE_SHARE");
    c->share = !(share && strcmp(share, "0") == 0);
    SRLM_CUDA_TRY(cudaSetDevice(c->device));
    /* a blocking stream: ordered with work other code puts on the legacy
     * default stream (a cudaMemcpy elsewhere, a library using stream 0) */
    SRLM_CUDA_TRY(cudaStreamCreateWithFlags(&c->stream, cudaStreamDefault));
    SRLM_CUDA_TRY(cudaEventCreateWithFlags(&c->staged, cudaEventDisableTiming));
    SRLM_CHECK(cuda_steps_init(c));
    for (int i = 0; i < CUDA_STAGING_SLOTS; i++) /* never recorded: waiting on one returns at once */
        SRLM_CUDA_TRY(cudaEventCreateWithFlags(&c->ring_read[i], cudaEventDisableTiming));
    SRLM_CHECK(cuda_blas_load());
    CUDA_BLAS_TRY(cuda_blas.create(&c->blas));
    CUDA_BLAS_TRY(cuda_blas.set_stream(c->blas, c->stream));
    /* Determinism: cuBLAS documents bit-identical results from run to run on
     * the same architecture, SM count and toolkit while one stream is active;
     * we use one stream and give it one workspace of our own, set once. The
     * atomics mode, which lets some routines (symv, hemv) trade that for
     * speed, stays off: the default, set anyway. */
    SRLM_CUDA_TRY(cudaMalloc(&c->blas_ws, BLAS_WORKSPACE));
    CUDA_BLAS_TRY(cuda_blas.set_workspace(c->blas, c->blas_ws, BLAS_WORKSPACE));
    CUDA_BLAS_TRY(cuda_blas.set_atomics_mode(c->blas, CUBLAS_ATOMICS_NOT_ALLOWED));
    CUDA_BLAS_TRY(cuda_blas.set_pointer_mode(c->blas, CUBLAS_POINTER_MODE_HOST));
    /* Default math: fp32 GEMMs stay fp32 (no TF32), so they match the CPU
     * backend to ~1e-6; bf16 GEMMs use the tensor cores with fp32 accumulation,
     * and split-k partial sums stay fp32 even when the output is bf16. */
    CUDA_BLAS_TRY(cuda_blas.set_math_mode(c->blas, (cublasMath_t)(CUBLAS_DEFAULT_MATH |
                                                                  CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION)));
    return SRLM_OK;
}

/* ---- staging ---- */

/* The host may rewrite the pinned buffer only once the copy reading it is done. */
static srlm_status staging_idle(cuda_impl *c) {
    SRLM_CUDA_TRY(cudaEventSynchronize(c->staged));
    return SRLM_OK;
}

/* Pinned host memory, or the message naming how much could not be pinned. */
static srlm_status pin(void **p, size_t bytes, const char *what) {
    cudaError_t e = cudaMallocHost(p, bytes);
    if (e == cudaSuccess) return SRLM_OK;
    cudaGetLastError();
    *p = NULL;
    return SRLM_ERR(SRLM_FAILED, "cuda backend: cannot pin %.1f MiB of host memory for %s: %s", bytes / 1048576.0,
                    what, cudaGetErrorString(e));
}

/* Regrowing frees memory the stream may still read: wait for it first. */
static srlm_status grow_host(cuda_impl *c, size_t need) {
    if (need <= c->host_cap) return SRLM_OK;
    SRLM_CUDA_TRY(cudaStreamSynchronize(c->stream));
    size_t cap = grown(c->host_cap, need);
    if (c->host) SRLM_CUDA_TRY(cudaFreeHost(c->host));
    c->host = NULL;
    c->host_cap = 0;
    SRLM_CHECK(pin(&c->host, cap, "staging"));
    c->host_cap = cap;
    return SRLM_OK;
}

static srlm_status device_malloc(cuda_impl *c, void **p, size_t bytes, const char *what);

/* Every slot of the ring, and of its device mirror, at least `need` bytes
 * (the same regrowth rule); a new ring starts empty: nothing to share. */
static srlm_status grow_ring(cuda_impl *c, size_t need) {
    enum { MIN_SLOT = 64 << 10 }; /* a training batch's token ids fit */
    if (need <= c->ring.slot_bytes) return SRLM_OK;
    SRLM_CUDA_TRY(cudaStreamSynchronize(c->stream));
    size_t slot = c->ring.slot_bytes * 2 > need ? c->ring.slot_bytes * 2 : need;
    if (slot < MIN_SLOT) slot = MIN_SLOT;
    /* forget the old ring before freeing it: a failed free leaves nothing
     * dangling. Recorded steps keep: they never read the ring (a recording
     * stages into the step area, stage_recorded) */
    char *old_host = c->ring.host, *old_dev = c->dev_ring;
    c->dev_ring = NULL;
    srlm_stage_ring_init(&c->ring, NULL, 0);
    const cudaError_t e_host = old_host ? cudaFreeHost(old_host) : cudaSuccess;
    SRLM_CUDA_TRY(cudaFree(old_dev));
    if (e_host != cudaSuccess)
        return SRLM_ERR(SRLM_FAILED, "cudaFreeHost of the staged op parameters' ring: %s", cudaGetErrorString(e_host));
    char *host = NULL;
    SRLM_CHECK(pin((void **)&host, slot * CUDA_STAGING_SLOTS, "the staged op parameters"));
    srlm_status st = device_malloc(c, (void **)&c->dev_ring, slot * CUDA_STAGING_SLOTS,
                                   "the staged op parameters' device mirror");
    if (st != SRLM_OK) {
        cudaFreeHost(host);
        return st;
    }
    srlm_stage_ring_init(&c->ring, host, slot);
    return SRLM_OK;
}

/* Device memory with the message the ops table promises when it runs out: what,
 * how much, and what the device has left. */
static srlm_status device_malloc(cuda_impl *c, void **p, size_t bytes, const char *what) {
    cudaError_t e = cudaMalloc(p, bytes);
    if (e == cudaSuccess) return SRLM_OK;
    cudaGetLastError(); /* an allocation failure is not sticky; clear it */
    *p = NULL;
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    cudaGetLastError();
    if (e == cudaErrorMemoryAllocation)
        return SRLM_ERR(SRLM_FAILED, "out of GPU memory allocating %s (%.1f MiB): device %d has %.1f MiB "
                        "free of %.1f MiB", what, bytes / 1048576.0, c->device, free_b / 1048576.0,
                        total_b / 1048576.0);
    return SRLM_ERR(SRLM_FAILED, "cudaMalloc of %s (%.1f MiB) on device %d: %s", what, bytes / 1048576.0,
                    c->device, cudaGetErrorString(e));
}

static srlm_status grow_device(cuda_impl *c, void **buf, size_t *cap, size_t need, const char *what) {
    if (need <= *cap) return SRLM_OK;
    SRLM_CUDA_TRY(cudaStreamSynchronize(c->stream));
    cuda_steps_moved(c); /* a recorded step may hold the old address */
    SRLM_CUDA_TRY(cudaFree(*buf));
    *buf = NULL;
    size_t newcap = grown(*cap, need);
    *cap = 0;
    SRLM_CHECK(device_malloc(c, buf, newcap, what));
    *cap = newcap;
    return SRLM_OK;
}

/* Slot k's first `bytes` to its device mirror, and the event the slot's next
 * fill waits for. */
static srlm_status copy_slot(cuda_impl *c, int k, size_t bytes) {
    const size_t at = (size_t)k * c->ring.slot_bytes;
    SRLM_CUDA_TRY(cudaMemcpyAsync(c->dev_ring + at, c->ring.host + at, bytes, cudaMemcpyHostToDevice, c->stream));
    const cudaError_t e = cudaEventRecord(c->ring_read[k], c->stream);
    if (e != cudaSuccess) { /* the event still marks an older copy: wait for this one before the slot is refilled */
        cudaStreamSynchronize(c->stream);
        cudaGetLastError();
        return SRLM_ERR(SRLM_FAILED, "cudaEventRecord after staging op parameters: %s", cudaGetErrorString(e));
    }
    return SRLM_OK;
}

/* cuda_stage while a step is recorded: the arrays are read from the step
 * area's device copy, which each replay refreshes. */
static srlm_status stage_recorded(cuda_impl *c, const cuda_in *in, int n, size_t out_bytes, void **dev) {
    if (out_bytes) return cuda_step_refuse(c, "an op brings results back to the host");
    for (int i = 0; i < n; i++) {
        dev[i] = in[i].bytes ? cuda_step_array(c, in[i].src, in[i].bytes) : c->steps.dev; /* empty: unread */
        if (!dev[i])
            return cuda_step_refuse(c, "an op's host array of %zu bytes is not in the step's inputs (or not at a "
                                    "multiple of %d bytes in them)", in[i].bytes, (int)SRLM_STAGE_ALIGN);
    }
    dev[n] = c->dev;
    return SRLM_OK;
}

srlm_status cuda_stage(srlm_backend *be, const cuda_in *in, int n, size_t out_bytes, void **dev) {
    cuda_impl *c = cuda_of(be);
    if (n < 0 || n > SRLM_STAGE_MAX_IN)
        return SRLM_ERR(SRLM_FAILED, "cuda backend: %d staged arrays for one op (at most %d)", n, SRLM_STAGE_MAX_IN);
    if (c->steps.recording) return stage_recorded(c, in, n, out_bytes, dev);
    srlm_stage_in arr[SRLM_STAGE_MAX_IN];
    for (int i = 0; i < n; i++) arr[i] = (srlm_stage_in){in[i].src, in[i].bytes};
    size_t off[SRLM_STAGE_MAX_IN];
    const size_t in_bytes = srlm_stage_layout(arr, n, off);
    /* never empty: an op's empty arrays get this (valid, unread) address */
    SRLM_CHECK(grow_device(c, &c->dev, &c->dev_cap, align_up(out_bytes ? out_bytes : 1), "op results"));
    char *mirror = c->dev;
    if (in_bytes) {
        SRLM_CHECK(grow_ring(c, in_bytes));
        int k = c->share ? srlm_stage_find(&c->ring, arr, n) : -1;
        if (k >= 0) {
            c->stage_shares++;
        } else {
            k = c->ring.next;
            SRLM_CUDA_TRY(cudaEventSynchronize(c->ring_read[k])); /* its last transfer has read it */
            srlm_stage_fill(&c->ring, arr, n);
            srlm_status st = copy_slot(c, k, in_bytes);
            if (st != SRLM_OK) {
                srlm_stage_forget(&c->ring, k); /* its mirror never got these arrays */
                return st;
            }
            c->stage_fills++;
        }
        mirror = c->dev_ring + (size_t)k * c->ring.slot_bytes;
    }
    for (int i = 0; i < n; i++) dev[i] = mirror + off[i];
    dev[n] = c->dev;
    return SRLM_OK;
}

srlm_status cuda_fetch(srlm_backend *be, const void *dev_src, size_t bytes, const void **host) {
    cuda_impl *c = cuda_of(be);
    if (c->steps.recording) return cuda_step_refuse(c, "an op brings results back to the host");
    /* a regrowth waits for the stream and touches only the host buffer, not
     * dev_src; the copy into it is ordered after any upload still reading it */
    SRLM_CHECK(grow_host(c, bytes));
    if (bytes)
        SRLM_CUDA_TRY(cudaMemcpyAsync(c->host, dev_src, bytes, cudaMemcpyDeviceToHost, c->stream));
    SRLM_CUDA_TRY(cudaStreamSynchronize(c->stream));
    *host = c->host;
    return SRLM_OK;
}

srlm_status cuda_workspace(srlm_backend *be, size_t bytes, void **ws) {
    cuda_impl *c = cuda_of(be);
    if (c->steps.recording && bytes > c->ws_cap) {
        if (bytes > c->steps.ws_need) c->steps.ws_need = bytes;
        return cuda_step_refuse(c, "the kernel workspace must first grow to %zu bytes", bytes);
    }
    SRLM_CHECK(grow_device(c, &c->ws, &c->ws_cap, bytes ? bytes : 1, "a kernel workspace"));
    *ws = c->ws;
    return SRLM_OK;
}

/* ---- argument checks ---- */

srlm_status cuda_check_dtype(const char *op, const char *name, const srlm_view *v) {
    if (v->dtype != SRLM_F32 && v->dtype != SRLM_BF16)
        return SRLM_ERR(SRLM_BAD_INPUT, "cuda backend: %s: %s is %s; only F32 and BF16 are supported", op,
                        name, srlm_dtype_name(v->dtype));
    return SRLM_OK;
}

srlm_status cuda_check_same(const char *op, const char *an, const srlm_view *a, const char *bn,
                            const srlm_view *b) {
    SRLM_CHECK(cuda_check_dtype(op, an, a));
    if (a->rows != b->rows || a->cols != b->cols || a->dtype != b->dtype)
        return SRLM_ERR(SRLM_BAD_INPUT, "cuda backend: %s shapes: %s (%lld,%lld) %s and %s (%lld,%lld) %s differ",
                        op, an, (long long)a->rows, (long long)a->cols, srlm_dtype_name(a->dtype), bn,
                        (long long)b->rows, (long long)b->cols, srlm_dtype_name(b->dtype));
    return SRLM_OK;
}

srlm_status cuda_attn_stage(srlm_backend *be, const char *op, const srlm_view *cache, const srlm_attn_shape *s,
                            srlm_cuda_attn_shape *cs) {
    SRLM_CHECK(srlm_attn_seq_check(op, cache, s));
    SRLM_CHECK(srlm_attn_seg_check(op, s));
    int max_len = 0;
    for (int b = 0; b < s->B; b++)
        if (s->n_past[b] + s->n_new[b] > max_len) max_len = s->n_past[b] + s->n_new[b];
    /* packed sequences go to the kernels as per-row bounds (2 T ints) */
    int *bounds = NULL;
    const size_t bytes = sizeof(int) * (size_t)s->B, row_bytes = sizeof(int) * (size_t)s->T;
    if (s->n_seg > 0) {
        bounds = malloc(2 * row_bytes);
        if (!bounds) return SRLM_ERR(SRLM_FAILED, "cuda backend: %s: out of memory for %d packed rows' bounds", op, s->T);
        srlm_cuda_attn_seg_bounds(s->seg_off, s->n_seg, s->T, bounds, bounds + s->T);
    }
    cuda_in in[5] = {{s->slot, bytes}, {s->n_past, bytes}, {s->n_new, bytes}, {bounds, bounds ? row_bytes : 0},
                     {bounds ? bounds + s->T : NULL, bounds ? row_bytes : 0}};
    void *dev[6];
    srlm_status st = cuda_stage(be, in, 5, 0, dev);
    free(bounds);
    SRLM_CHECK(st);
    *cs = (srlm_cuda_attn_shape){s->B, s->T, s->n_heads, s->n_kv_heads, s->head_dim, s->max_seq,
                                 dev[0], dev[1], dev[2], max_len, s->n_seg > 0 ? dev[3] : NULL,
                                 s->n_seg > 0 ? dev[4] : NULL};
    return SRLM_OK;
}

/* ---- memory ---- */

static srlm_status cuda_alloc(srlm_backend *be, srlm_view *v, srlm_dtype dtype, int64_t rows,
                              int64_t cols, const char *what) {
    cuda_impl *c = cuda_of(be);
    if (c->steps.recording) return cuda_step_refuse(c, "allocating %s", what);
    if (dtype != SRLM_F32 && dtype != SRLM_BF16)
        return SRLM_ERR(SRLM_BAD_INPUT, "cuda backend: cannot allocate %s as %s: only F32 and BF16", what,
                        srlm_dtype_name(dtype));
    if (rows < 0 || cols < 0 || (cols && (size_t)rows > SIZE_MAX / (size_t)cols / 4))
        return SRLM_ERR(SRLM_FAILED, "cuda backend: size overflow allocating %s (%lld x %lld)", what,
                        (long long)rows, (long long)cols);
    size_t bytes = (size_t)rows * (size_t)cols * srlm_dtype_size(dtype);
    size_t rounded = align_up(bytes ? bytes : 1);
    void *p;
    SRLM_CHECK(device_malloc(c, &p, rounded, what));
    /* zeroed like the CPU backend's memory: callers accumulate into fresh views */
    cudaError_t e = cudaMemsetAsync(p, 0, rounded, c->stream);
    if (e != cudaSuccess) {
        cudaFree(p);
        return SRLM_ERR(SRLM_FAILED, "cudaMemsetAsync zeroing %s: %s", what, cudaGetErrorString(e));
    }
    *v = (srlm_view){p, dtype, rows, cols, cols};
    return SRLM_OK;
}

static void cuda_free(srlm_backend *be, srlm_view *v) {
    cuda_impl *c = cuda_of(be);
    if (!v->data) return;
    cuda_steps_free(c, v->data); /* free cannot report an error */
    v->data = NULL;
}

/* Rows of a view per staging chunk, and the pinned buffer grown to hold them. */
static srlm_status chunk_rows(cuda_impl *c, const srlm_view *v, int64_t *rows_per) {
    size_t row = (size_t)v->cols * srlm_dtype_size(v->dtype);
    int64_t r = row ? (int64_t)(CHUNK / row) : v->rows;
    if (r < 1) r = 1;
    if (r > v->rows) r = v->rows;
    SRLM_CHECK(grow_host(c, (size_t)r * row));
    *rows_per = r;
    return SRLM_OK;
}

static srlm_status cuda_upload(srlm_backend *be, srlm_view *dst, const float *src) {
    cuda_impl *c = cuda_of(be);
    if (c->steps.recording) return cuda_step_refuse(c, "upload");
    SRLM_CHECK(cuda_check_dtype("upload", "dst", dst));
    if (dst->rows == 0 || dst->cols == 0) return SRLM_OK;
    const size_t es = srlm_dtype_size(dst->dtype), row = (size_t)dst->cols * es;
    int64_t per;
    SRLM_CHECK(chunk_rows(c, dst, &per));
    for (int64_t r0 = 0; r0 < dst->rows; r0 += per) {
        int64_t nr = dst->rows - r0 < per ? dst->rows - r0 : per;
        SRLM_CHECK(staging_idle(c));
        srlm_convert_from_f32(c->host, dst->dtype, src + r0 * dst->cols, (size_t)(nr * dst->cols));
        char *d = (char *)dst->data + (size_t)r0 * (size_t)dst->stride * es;
        SRLM_CUDA_TRY(cudaMemcpy2DAsync(d, (size_t)dst->stride * es, c->host, row, row, (size_t)nr,
                                        cudaMemcpyHostToDevice, c->stream));
        SRLM_CUDA_TRY(cudaEventRecord(c->staged, c->stream));
    }
    return SRLM_OK;
}

static srlm_status cuda_download(srlm_backend *be, float *dst, const srlm_view *src) {
    cuda_impl *c = cuda_of(be);
    if (c->steps.recording) return cuda_step_refuse(c, "download");
    SRLM_CHECK(cuda_check_dtype("download", "src", src));
    if (src->rows == 0 || src->cols == 0) return SRLM_OK;
    const size_t es = srlm_dtype_size(src->dtype), row = (size_t)src->cols * es;
    int64_t per;
    SRLM_CHECK(chunk_rows(c, src, &per));
    for (int64_t r0 = 0; r0 < src->rows; r0 += per) {
        int64_t nr = src->rows - r0 < per ? src->rows - r0 : per;
        const char *s = (const char *)src->data + (size_t)r0 * (size_t)src->stride * es;
        SRLM_CUDA_TRY(cudaMemcpy2DAsync(c->host, row, s, (size_t)src->stride * es, row, (size_t)nr,
                                        cudaMemcpyDeviceToHost, c->stream));
        SRLM_CUDA_TRY(cudaStreamSynchronize(c->stream));
        srlm_convert_to_f32(dst + r0 * src->cols, c->host, src->dtype, (size_t)(nr * src->cols));
    }
    return SRLM_OK;
}

/* NCCL on this backend's device and stream: collectives and ops are ordered by
 * the stream itself. Free the communicator before the backend. */
static srlm_status cuda_device_comm(srlm_backend *be, srlm_comm *mpi, srlm_comm **out) {
    *out = NULL;
#ifdef SRLM_HAVE_NCCL
    /* SRLM_NCCL=0: none, so the callers stage collectives through the host as
     * without NCCL (several ranks on one GPU, which NCCL refuses: the tests) */
    const char *use = getenv("SRLM_NCCL");
    if (use && !strcmp(use, "0")) return SRLM_OK;
    cuda_impl *c = cuda_of(be);
    return srlm_comm_nccl_new(mpi, c->device, (void *)c->stream, out);
#else
    (void)be;
    (void)mpi;
    return SRLM_OK; /* built without NCCL: callers stage through the host */
#endif
}

static const srlm_backend_ops CUDA_OPS = {
    .name = "cuda",
    .host_memory = 0,
    .destroy = cuda_destroy,
    .device_comm = cuda_device_comm,
    .sample = cuda_sample,
    .step_inputs = cuda_step_inputs,
    .step_begin = cuda_step_begin,
    .step_end = cuda_step_end,
    .step_replay = cuda_step_replay,
    .alloc = cuda_alloc,
    .free = cuda_free,
    .upload = cuda_upload,
    .download = cuda_download,
    .fill = cuda_fill,
    .matmul = cuda_matmul,
    .embedding = cuda_embedding,
    .rmsnorm = cuda_rmsnorm,
    .rope = cuda_rope,
    .kv_store = cuda_kv_store,
    .attention = cuda_attention,
    .swiglu = cuda_swiglu,
    .copy_rows = cuda_copy_rows,
    .copy = cuda_copy,
    .add = cuda_add,
    .add_rmsnorm = cuda_add_rmsnorm,
    .fill_cols = cuda_fill_cols,
    .row_logsumexp_target = cuda_row_logsumexp_target,
    .row_argmax = cuda_row_argmax,
    .dropout = cuda_dropout,
    .matmul_dx = cuda_matmul_dx,
    .matmul_dw = cuda_matmul_dw,
    .embedding_backward = cuda_embedding_backward,
    .rmsnorm_backward = cuda_rmsnorm_backward,
    .rope_backward = cuda_rope_backward,
    .attention_backward = cuda_attention_backward,
    .swiglu_backward = cuda_swiglu_backward,
    .logprob_backward = cuda_logprob_backward,
    .adamw = cuda_adamw,
    .sum_squares = cuda_sum_squares,
    .scale = cuda_scale,
};

srlm_status srlm_backend_cuda_new(srlm_backend **out, int device) {
    *out = NULL;
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0) {
        cudaGetLastError();
        return SRLM_ERR(SRLM_BAD_INPUT, "no CUDA device available: cudaGetDeviceCount returned %s "
                        "(%s) and %d devices", cudaGetErrorName(e), cudaGetErrorString(e), count);
    }
    if (device > 0 && count == 1) {
        /* one GPU visible per process (Slurm's --gpus-per-task, or a per-rank
         * CUDA_VISIBLE_DEVICES): the node-local rank's GPU is that one */
        SRLM_INFO("cuda backend: local rank %d sees one GPU (CUDA_VISIBLE_DEVICES %s); using it", device,
                  getenv("CUDA_VISIBLE_DEVICES") ? getenv("CUDA_VISIBLE_DEVICES") : "unset");
        device = 0;
    }
    if (device < 0 || device >= count)
        return SRLM_ERR(SRLM_BAD_INPUT, "no CUDA device %d: cudaGetDeviceCount found %d (devices 0 .. %d); one "
                        "rank per GPU: start at most %d ranks per node, or give each rank its own GPU",
                        device, count, count - 1, count);
    srlm_backend *be = calloc(1, sizeof *be);
    cuda_impl *c = calloc(1, sizeof *c);
    if (!be || !c) {
        free(be);
        free(c);
        return SRLM_ERR(SRLM_FAILED, "out of memory creating the cuda backend");
    }
    c->device = device;
    be->ops = &CUDA_OPS;
    be->threads = 1;
    be->impl = c;
    srlm_status st = cuda_init(c);
    if (st != SRLM_OK) {
        cuda_destroy(be);
        return st;
    }
    *out = be;
    return SRLM_OK;
}
