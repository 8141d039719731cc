/* Hopper's wgmma building blocks one at a time, as the attention kernels
 * (attention_sm90.cu, attention_bwd_sm90.cu) use them, for
 * tests/gpu/test_wgmma_gpu.c: where the wgmma attention disagrees with its
 * CPU twin, which block is wrong (the tile loads and their swizzle, a
 * K-major or an N-major operand descriptor, the accumulator layout, the
 * register A operand) shows from this probe alone. Not on any model path.
 *
 * One block of 2 * a_rows threads (one warpgroup per 64 rows of a):
 *   c (a_rows x 64, fp32)  = a b^T, a (a_rows x hd) and b (64 x hd) bf16,
 *       both K-major from the swizzled tiles (S = Q K^T, m64n64k16), the
 *       64-row operand of warpgroup w from row 64 w of a's tile;
 *   d (a_rows x hd, fp32)  = bf16(c) v, v (64 x hd) bf16 read N-major, c
 *       rounded to bf16 from the accumulator registers into the register A
 *       operand (O += P V, m64nHDk16).
 * Inputs and outputs dense, row-major, device memory. */
#ifndef SRLM_KERNEL_WGMMA_PROBE_H
#define SRLM_KERNEL_WGMMA_PROBE_H

#include "core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* hd 64 or 128, a_rows 64 or 128. A device that cannot run the sm_90a
 * image (srlm_cuda_attention_sm90_available() == 0) gets an error. */
srlm_status srlm_cuda_wgmma_probe(int hd, int a_rows, const void *a, const void *b, const void *v, float *c,
                                  float *d, void *stream);

#ifdef __cplusplus
}
#endif

#endif
