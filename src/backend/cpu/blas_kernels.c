/* Which CPU kernels OpenBLAS picked (blas_kernels.h says why it matters). */
#include "backend/cpu/blas_kernels.h"

#include <stddef.h>
#include <strings.h>

char *openblas_get_corename(void); /* OpenBLAS's own API; cblas.h declares it in some releases only */

/* OpenBLAS's x86-64 kernel sets that use AVX2 (its names, any case). */
static const char *const AVX2_KERNELS[] = {"Haswell",    "Zen",            "SkylakeX", "CooperLake",
                                           "Excavator", "SapphireRapids", NULL};

const char *srlm_blas_better_kernels(const char **picked) {
    const char *name = openblas_get_corename();
    if (picked) *picked = name ? name : "unknown";
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (!name || !__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return NULL;
    for (const char *const *k = AVX2_KERNELS; *k; k++)
        if (!strcasecmp(name, *k)) return NULL;
    int avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
                 __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
                 __builtin_cpu_supports("avx512vl");
    return avx512 ? "SkylakeX" : "Haswell";
#else
    return NULL;
#endif
}
