/* Element types of stored and computed tensors, and the conversions to fp32. */
#ifndef SRLM_DTYPE_H
#define SRLM_DTYPE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef enum { SRLM_F32 = 0, SRLM_BF16 = 1, SRLM_F16 = 2 } srlm_dtype;

static inline size_t srlm_dtype_size(srlm_dtype t) { return t == SRLM_F32 ? 4 : 2; }
static inline const char *srlm_dtype_name(srlm_dtype t) {
    return t == SRLM_F32 ? "F32" : t == SRLM_BF16 ? "BF16" : "F16";
}

static inline float srlm_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Round to nearest even, as torch does; NaN stays NaN. */
static inline uint16_t srlm_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float    srlm_f16_to_f32(uint16_t h);
uint16_t srlm_f32_to_f16(float f);

/* Convert n elements of type `t` at src into fp32 at dst. */
void srlm_convert_to_f32(float *dst, const void *src, srlm_dtype t, size_t n);
void srlm_convert_from_f32(void *dst, srlm_dtype t, const float *src, size_t n);

#endif
