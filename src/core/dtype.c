#include "core/dtype.h"

#include <math.h>

float srlm_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t u;
    if (exp == 0) {
        if (man == 0) u = sign;
        else { /* subnormal: value = man * 2^-24 */
            float f = ldexpf((float)man, -24);
            memcpy(&u, &f, 4);
            u |= sign;
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (man << 13);
    } else {
        u = sign | ((exp + 112u) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t srlm_f32_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t absu = u & 0x7fffffffu;
    if (absu > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);   /* NaN */
    if (absu >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);  /* overflow -> inf */
    if (absu < 0x38800000u) {                                    /* subnormal or zero */
        float a;
        memcpy(&a, &absu, 4);
        return (uint16_t)(sign | (uint16_t)lrintf(a * 16777216.0f)); /* a / 2^-24, RNE */
    }
    uint32_t exp = (absu >> 23) - 112u;
    uint32_t man = absu & 0x7fffffu;
    uint32_t h = (exp << 10) | (man >> 13);
    uint32_t rest = man & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h++; /* RNE; carry may bump exp */
    return (uint16_t)(sign | h);
}

void srlm_convert_to_f32(float *dst, const void *src, srlm_dtype t, size_t n) {
    const uint16_t *h = src;
    switch (t) {
    case SRLM_F32: memcpy(dst, src, n * 4); break;
    case SRLM_BF16: for (size_t i = 0; i < n; i++) dst[i] = srlm_bf16_to_f32(h[i]); break;
    case SRLM_F16: for (size_t i = 0; i < n; i++) dst[i] = srlm_f16_to_f32(h[i]); break;
    }
}

void srlm_convert_from_f32(void *dst, srlm_dtype t, const float *src, size_t n) {
    uint16_t *h = dst;
    switch (t) {
    case SRLM_F32: memcpy(dst, src, n * 4); break;
    case SRLM_BF16: for (size_t i = 0; i < n; i++) h[i] = srlm_f32_to_bf16(src[i]); break;
    case SRLM_F16: for (size_t i = 0; i < n; i++) h[i] = srlm_f32_to_f16(src[i]); break;
    }
}
