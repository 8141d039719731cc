/* Which CPU kernels OpenBLAS picked, checked against the CPU.
 *
 * OpenBLAS built with DYNAMIC_ARCH (Debian's) picks its kernels by CPU model
 * when the library loads. A model newer than the release falls back to the
 * oldest x86-64 kernels, Prescott's (SSE3): OpenBLAS 0.3.21 on an Emerald
 * Rapids Xeon (family 6, model 207) does, and its sgemm runs several times
 * slower than with the AVX-512 kernels the CPU has. The pick is read from
 * OPENBLAS_CORETYPE at load time, so mending it means starting again with that
 * variable set; srlm's main does that for the commands that compute. */
#ifndef SRLM_BLAS_KERNELS_H
#define SRLM_BLAS_KERNELS_H

/* The OPENBLAS_CORETYPE this CPU should have when OpenBLAS picked kernels
 * without AVX2 although the CPU has AVX2 and FMA: "SkylakeX" with AVX-512
 * (F, CD, BW, DQ, VL), else "Haswell". NULL when the pick is fine or the
 * machine is not x86-64. *picked (may be NULL) gets OpenBLAS's pick. */
const char *srlm_blas_better_kernels(const char **picked);

#endif
