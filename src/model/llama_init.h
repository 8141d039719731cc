/* A freshly initialised Llama, written as a Hugging Face checkpoint: used by the
 * demo (which trains its tiny model from scratch) and by tests. */
#ifndef SRLM_LLAMA_INIT_H
#define SRLM_LLAMA_INIT_H

#include <stdint.h>

#include "io/hf_config.h"

/* Writes DIR/config.json and DIR/model.safetensors (fp32) with weights drawn
 * from N(0, init_std^2) (norm weights 1), keyed by `seed` and each tensor's
 * index, so the same seed always gives the same model. DIR must exist. */
srlm_status srlm_llama_write_random(const char *dir, const srlm_hf_config *cfg, uint64_t seed,
                                    double init_std);

#endif
