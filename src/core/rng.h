/* Counter-based random numbers: a value is a pure function of (key, counter),
 * so a draw does not depend on how many draws happened before it, on batch
 * composition, rank count or restarts. Built on the SplitMix64 finaliser, which
 * passes BigCrush as a hash of consecutive counters. */
#ifndef SRLM_RNG_H
#define SRLM_RNG_H

#include <math.h>
#include <stdint.h>

static inline uint64_t srlm_mix64(uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Derive a key from a parent key and a label (e.g. (run seed, iteration), then phase, item). */
static inline uint64_t srlm_rng_key(uint64_t parent, uint64_t label) {
    return srlm_mix64(srlm_mix64(parent) ^ (label * 0xd1b54a32d192ed03ull));
}

static inline uint64_t srlm_rng_u64(uint64_t key, uint64_t counter) {
    return srlm_mix64(key ^ srlm_mix64(counter));
}

/* Uniform in [0, 1) with 24 random bits (exact in fp32). */
static inline float srlm_rng_uniform(uint64_t key, uint64_t counter) {
    return (float)(srlm_rng_u64(key, counter) >> 40) * (1.0f / 16777216.0f);
}

/* Standard normal by Box-Muller on two 53-bit uniforms drawn from one counter. */
static inline double srlm_rng_normal(uint64_t key, uint64_t counter) {
    uint64_t a = srlm_rng_u64(key, 2 * counter), b = srlm_rng_u64(key, 2 * counter + 1);
    double u1 = ((a >> 11) + 1.0) * (1.0 / 9007199254740993.0); /* (0, 1] */
    double u2 = (b >> 11) * (1.0 / 9007199254740992.0);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

#endif
