/* Element access by storage dtype, shared by the kernels: fp32 values read
 * from F32 or BF16 storage and written back to it. All math is fp32; storage
 * is where the dtype shows. */
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdint.h>

namespace dtype_io {

/* fp32 value of an element (bf16 -> fp32 is exact). */
__device__ __forceinline__ float ld(float v) { return v; }
__device__ __forceinline__ float ld(__nv_bfloat16 v) { return __bfloat162float(v); }

/* fp32 value of raw bf16 bits (the low 16 bits of h), by moving them to the
 * high half: for untyped buffers and packed words; a NaN keeps its payload. */
__device__ __forceinline__ float bf16_bits_to_f32(uint32_t h) { return __uint_as_float(h << 16); }

/* srlm_f32_to_bf16 (core/dtype.h) bit for bit: round to nearest even, a NaN
 * stays a NaN (sign and top payload kept, quiet bit set). The CPU twins round
 * this way, so results the tests compare bit for bit must too. */
__device__ __forceinline__ uint16_t bf16_bits(float f) {
    const uint32_t u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
__device__ __forceinline__ __nv_bfloat16 to_bf16(float f) { return __ushort_as_bfloat16(bf16_bits(f)); }

/* Store an fp32 value as the element's dtype (bf16: bf16_bits' rounding). */
__device__ __forceinline__ void st(float *p, float v) { *p = v; }
__device__ __forceinline__ void st(__nv_bfloat16 *p, float v) { *p = to_bf16(v); }

/* An fp32 value as T by the hardware conversion (cvt.rn.bf16.f32), one
 * instruction: the same round to nearest even as to_bf16 for every non-NaN
 * value, while a NaN's bits are the hardware's choice. The attention kernels
 * store with it; they are compared to the CPU within a tolerance. */
template <typename T> __device__ __forceinline__ T from_f32(float x);
template <> __device__ __forceinline__ float from_f32<float>(float x) { return x; }
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float x) {
    return __float2bfloat16_rn(x);
}

}  // namespace dtype_io
