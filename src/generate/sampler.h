/* Token sampling for the generation engine: temperature, top-k and top-p over one
 * row of logits, with the randomness supplied by the caller as one uniform draw per
 * token, so a sample's tokens are a pure function of (seed, sample, position) and
 * the logits (DESIGN.md "Determinism"). */
#ifndef SRLM_SAMPLER_H
#define SRLM_SAMPLER_H

#include <stdint.h>

#include "core/status.h"

typedef struct srlm_sampling {
    float temperature;  /* 0 = greedy */
    float top_p;        /* (0, 1]; 1 = off */
    int   top_k;        /* 0 = off */
} srlm_sampling;

/* Scratch for V candidates, made once per engine (no allocation per token). */
typedef struct srlm_sampler srlm_sampler;
srlm_status srlm_sampler_new(srlm_sampler **s, int vocab);
void        srlm_sampler_free(srlm_sampler *s);

/* SRLM_BAD_INPUT with a message unless temperature >= 0 and finite, top_p in (0, 1],
 * top_k >= 0 (what srlm_sample checks; lets a caller reject a request up front). */
srlm_status srlm_sampling_validate(const srlm_sampling *cfg);

/* The draw for token `position` of sample `sample` of a request with seed `seed`: a
 * pure function of the three (so a sample's tokens do not depend on batch
 * composition, rank count or restarts). In [0, 1), 24 random bits. */
float srlm_sample_uniform(uint64_t seed, uint64_t sample, uint64_t position);

/* Pick a token from one row of logits (vocab floats, vocab <= the sampler's; -inf
 * entries are never picked; NaN or +inf -> SRLM_BAD_INPUT) with the uniform draw u
 * in [0, 1) (ignored when greedy).
 *
 * Greedy (temperature 0): argmax, the lowest id on ties; *prob = 1.
 * Otherwise, in the order transformers applies its warpers for
 * generate(do_sample=True, temperature, top_k, top_p):
 *   logits / temperature;
 *   top-k: keep the k largest; ties at the boundary keep the lower ids (transformers
 *     keeps every tied token there, so it may keep more than k);
 *   top-p (transformers' TopPLogitsWarper): sort ascending, remove tokens whose
 *     cumulative probability <= 1 - top_p, always keep one; equivalently, in
 *     descending order keep a token while the mass before it is < top_p;
 *   softmax over the kept tokens (double) and inverse-CDF sampling with u over the
 *     kept tokens in a fixed order: descending probability, ties by ascending id.
 * Returns the token id; *prob (may be NULL) gets its probability under the final
 * distribution. Invalid settings or a row with no finite logit -> SRLM_BAD_INPUT. */
srlm_status srlm_sample(srlm_sampler *s, const float *logits, int vocab, const srlm_sampling *cfg,
                        float u, int *token, double *prob);

/* The final distribution srlm_sample draws from, for tests and diagnostics: the kept
 * tokens in the fixed order (descending probability, ties by ascending id) with their
 * probabilities. ids and probs hold at least vocab entries; *n gets the count. Greedy
 * gives the argmax with probability 1. Sorts the kept set: not for the per-token path. */
srlm_status srlm_sample_distribution(srlm_sampler *s, const float *logits, int vocab,
                                     const srlm_sampling *cfg, int *ids, double *probs, int *n);

#endif
