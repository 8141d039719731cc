/* Attention on the GPU: flash-style forward and backward (tiled, online
 * softmax, nothing seq x seq in memory), causal, GQA, and decode attention
 * over the KV cache. CPU twins: cpu_attention and cpu_attention_backward in
 * src/backend/cpu/ (the ops table's attention and attention_backward).
 *
 * Layout and semantics are the ops table's (backend/backend.h, srlm_attn_shape):
 * q and out are (B*T, n_heads*head_dim) views, the caches (slots*max_seq,
 * n_kv_heads*head_dim); sequence b owns cache slot slot[b], has n_past[b]
 * cached tokens and brings n_new[b] real rows of T; new row t attends to cache
 * positions 0 .. n_past[b] + t. Padding rows (t >= n_new[b]) get zeros.
 * All views of one call share a dtype, SRLM_F32 or SRLM_BF16; accumulation is
 * fp32 either way. With bf16, head_dim 64 or 128 and rows aligned to 16 bytes,
 * the forward and the backward run on the tensor cores (mma.sync; wgmma on
 * sm_90 devices); other inputs
 * run a scalar tiled path with the same algorithm. Deterministic: no atomics,
 * every sum in a fixed order. */
#ifndef SRLM_KERNEL_ATTENTION_H
#define SRLM_KERNEL_ATTENTION_H

#include <stddef.h>

#include "backend/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* srlm_attn_shape with its per-sequence arrays in DEVICE memory. Packed
 * sequences (srlm_attn_shape's seg_off) come as per-row bounds, both NULL
 * or both set, and only with B == 1 and n_past 0: row t attends to keys
 * seg_lo[t] .. t and key j is seen by rows j .. seg_hi[j] - 1 (both
 * non-decreasing; srlm_cuda_attn_seg_bounds makes them). The forward and
 * backward honour them; decode (T == 1) has nothing to pack. */
typedef struct {
    int        B, T;
    int        n_heads, n_kv_heads, head_dim;
    int        max_seq;
    const int *slot, *n_past, *n_new; /* (B) each, device memory */
    int        max_len;               /* max over b of n_past[b] + n_new[b] (host-known bound) */
    const int *seg_lo, *seg_hi;       /* (T) each, device memory, or NULL */
} srlm_cuda_attn_shape;

/* Host: the per-row bounds of n_seg packed sequences over T rows (seg_off as
 * srlm_attn_shape has it): row t of sequence i gets lo = seg_off[i] and
 * hi = seg_off[i + 1]; rows past seg_off[n_seg] (padding) get seg_off[n_seg]
 * for both, keeping the arrays non-decreasing. */
void srlm_cuda_attn_seg_bounds(const int *seg_off, int n_seg, int T, int *lo, int *hi);

/* out = softmax(scale q k^T, causal) v, scale = 1/sqrt(head_dim). lse (may be
 * NULL): (B*T) x n_heads fp32 row log-sum-exp of the scaled scores (natural log),
 * kept by a caller that will run the backward soon. */
srlm_status srlm_cuda_attention_fwd(srlm_view *out, const srlm_view *q, const srlm_view *k_cache,
                                    const srlm_view *v_cache, const srlm_cuda_attn_shape *s,
                                    float *lse, void *stream);

/* Which tensor-core kernels bf16 head_dim 64/128 run: AUTO (the default)
 * takes the wgmma kernels on compute capability 9.0 devices (H100, H200) and
 * mma.sync elsewhere; MMA keeps mma.sync everywhere (as does the environment
 * variable SRLM_CUDA_ATTN_SM90=0, read at the first launch). Forward and
 * backward alike. For tests and benchmarks. */
enum { SRLM_CUDA_ATTN_PATH_AUTO = 0, SRLM_CUDA_ATTN_PATH_MMA = 1 };
void srlm_cuda_attention_force_path(int path);
/* 1 where the current device runs the wgmma kernels: compute capability 9.0
 * and the build's sm_90a image loaded. */
int srlm_cuda_attention_sm90_available(void);
/* The wgmma forward and dq kernels run two warpgroups a block whose products
 * take turns (ping-pong: one group's softmax overlaps the other's products);
 * 0 lets both issue at once (as does SRLM_CUDA_ATTN_PINGPONG=0). For tests and
 * benchmarks; default on. */
void srlm_cuda_attention_sm90_pingpong(int on);
/* The wgmma forward that overlaps each key tile's scores with the last tile's
 * weighted sum (FlashAttention-3's intra-warpgroup overlap; three K/V
 * buffers), and the dq kernel that overlaps each tile's S and dP with the
 * last tile's dQ product: off by default until they have run on a GPU; 1 (or
 * SRLM_CUDA_ATTN_OVERLAP=1) turns them on. For tests and benchmarks. */
void srlm_cuda_attention_sm90_overlap(int on);

/* Bytes of device workspace srlm_cuda_attention_bwd needs for this shape, on
 * the current device: size it for each call (it depends on the device, and is
 * not monotonic in the shape: a GQA shape with too few dk/dv blocks to fill
 * the GPU takes partials that a larger one does not). 16-byte aligned
 * workspace lets the tensor-core backward split its GQA groups; a less aligned
 * one gets the unsplit kernel. */
size_t srlm_cuda_attention_bwd_workspace(const srlm_cuda_attn_shape *s);

/* The tensor-core backward splits a GQA group's query heads over several dk/dv
 * blocks when one block per group leaves the GPU under-filled (its fp32
 * partials then take workspace). 0 (the default): chosen from the shape and
 * the device; n > 0: n blocks per group where n divides the group, else 1.
 * For tests and benchmarks; set it before sizing the workspace. */
void srlm_cuda_attention_bwd_force_split(int blocks_per_group);

/* What a forward run kept for the backward: its output (the same view shape
 * as q) and its lse (srlm_cuda_attention_fwd's lse argument). */
typedef struct {
    const srlm_view *out;
    const float     *lse;
} srlm_cuda_attn_saved;

/* Given dout: dq = (padding rows 0); dk, dv (cache layout) = for every row of
 * each used slot (all max_seq rows; rows past n_past + n_new get 0), not
 * accumulated. With saved (the forward's out and lse, both required) the row
 * statistics come from them, as FlashAttention's backward does; with saved ==
 * NULL they are recomputed by a forward pass (lse and D = rowsum(dout * out)
 * inside the workspace), so nothing from the forward is needed, at the cost
 * of that pass. dq by a pass over key blocks per query block and dk/dv by a
 * pass over query blocks per key block: no atomics. */
srlm_status srlm_cuda_attention_bwd(srlm_view *dq, srlm_view *dk, srlm_view *dv, const srlm_view *dout,
                                    const srlm_view *q, const srlm_view *k_cache,
                                    const srlm_view *v_cache, const srlm_cuda_attn_shape *s,
                                    const srlm_cuda_attn_saved *saved, void *workspace,
                                    size_t workspace_bytes, void *stream);

/* Decode (T == 1, one query row per sequence) over long cached contexts: the
 * keys are split into chunks so that B * n_heads * chunks blocks fill the GPU,
 * each chunk keeps its own max and sum of exp, and a second kernel combines
 * them in chunk order. Workspace bytes for the partial results: */
size_t srlm_cuda_attention_decode_workspace(const srlm_cuda_attn_shape *s);
srlm_status srlm_cuda_attention_decode(srlm_view *out, const srlm_view *q, const srlm_view *k_cache,
                                       const srlm_view *v_cache, const srlm_cuda_attn_shape *s,
                                       void *workspace, size_t workspace_bytes, void *stream);

#ifdef __cplusplus
}
#endif

#endif
