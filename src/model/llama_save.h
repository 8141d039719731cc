/* Writing a model back as a Hugging Face checkpoint folder (every M_t is kept in
 * HF format; DESIGN.md "Contracts / Files" and "Training numerics").
 *
 * DIR gets config.json (m->cfg with torch_dtype from `dtype`), model.safetensors
 * or, when the weights are larger than shard_bytes, model-0000K-of-0000N.safetensors
 * shards with model.safetensors.index.json ({"metadata": {"total_size"},
 * "weight_map"}), and tokenizer.model (a copy of tokenizer_path, when given).
 * Tensors carry their HF names and shapes, the vocab unpadded (the padding rows
 * of m->embed / m->lm_head are not written), no lm_head.weight when tied, and
 * __metadata__ {"format": "pt"}; transformers' LlamaForCausalLM loads the folder
 * as it is.
 *
 * Folder protocol: everything is written into DIR.tmp (a stale one from a killed
 * run is removed first), each file fsynced, then a stale DIR is removed, DIR.tmp
 * renamed to DIR and the parent folder fsynced. A reader sees the old DIR, no
 * DIR, or the whole new one; never a part.
 *
 * shard_bytes 0 = 5 GB, transformers' default. Tensor parallel: collective over
 * m->tp; every rank of the group calls it, sends its slices tensor by tensor, and
 * rank 0 of the group assembles each full tensor and writes (one tensor plus one
 * shard file's worth of data in memory at a time). Weights are read through the
 * backend's download op, so this works for any backend. */
#ifndef SRLM_LLAMA_SAVE_H
#define SRLM_LLAMA_SAVE_H

#include <stddef.h>

#include "core/dtype.h"
#include "model/llama.h"

#define SRLM_DEFAULT_SHARD_BYTES ((size_t)5000000000u)

srlm_status srlm_llama_save(const srlm_llama *m, const char *dir, srlm_dtype dtype,
                            const char *tokenizer_path, size_t shard_bytes);


#endif
