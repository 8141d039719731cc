/* A Hugging Face model folder: config.json plus either model.safetensors or the
 * shards named by model.safetensors.index.json.
 *
 * Opening validates the config, every shard's header, and the index against the
 * shards (each listed tensor must be in the shard the index names; no tensor may
 * be in two shards). Tensor data stays memory-mapped; the read calls convert just
 * the requested rows or columns to fp32, so a tensor-parallel rank touches only
 * its slice of a large checkpoint. */
#ifndef SRLM_CHECKPOINT_H
#define SRLM_CHECKPOINT_H

#include <stdint.h>

#include "io/hf_config.h"
#include "io/safetensors.h"

typedef struct {
    char              dir[1024];
    srlm_hf_config    config;
    srlm_safetensors *files; int n_files;   /* model.safetensors, or every shard named by model.safetensors.index.json */
} srlm_checkpoint;

srlm_status srlm_ckpt_open(srlm_checkpoint *ck, const char *dir);
void        srlm_ckpt_close(srlm_checkpoint *ck);

/* NULL if absent.
 * Tied embeddings: when config.tie_word_embeddings is true and the checkpoint
 * has no "lm_head.weight", looking up "lm_head.weight" returns the
 * "model.embed_tokens.weight" tensor (its name field says so). When ties are off
 * and lm_head.weight is absent, this returns NULL and the read calls fail with a
 * message naming the missing tensor. */
const srlm_st_tensor *srlm_ckpt_find(const srlm_checkpoint *ck, const char *name);

/* The file (full path) a tensor returned by srlm_ckpt_find lives in. */
const char *srlm_ckpt_tensor_file(const srlm_checkpoint *ck, const srlm_st_tensor *t);

/* Check that `name` is there with the shape the caller expects (as for
 * srlm_ckpt_read_rows), without touching its data. */
srlm_status srlm_ckpt_check_shape(const srlm_checkpoint *ck, const char *name, int64_t rows, int64_t cols);

/* Read rows [r0,r1) of a 2-D tensor (or elements [r0,r1) of a 1-D one) converted
 * to fp32 into dst ((r1-r0) x cols, row-major). `rows`,`cols` are the shape the
 * caller EXPECTS (cols=1 for 1-D; a [rows, 1] 2-D tensor also matches): a missing
 * tensor or a different shape is SRLM_BAD_INPUT naming the tensor, the file, the
 * expected and the found shape. Only the bytes of those rows are touched. A range
 * outside [0, rows] is a caller bug: SRLM_FAILED. */
srlm_status srlm_ckpt_read_rows(const srlm_checkpoint *ck, const char *name, int64_t rows, int64_t cols,
                                int64_t r0, int64_t r1, float *dst);
/* Read columns [c0,c1) of a 2-D tensor into dst (rows x (c1-c0)); strided,
 * touching only those bytes of each row. Errors as for read_rows. */
srlm_status srlm_ckpt_read_cols(const srlm_checkpoint *ck, const char *name, int64_t rows, int64_t cols,
                                int64_t c0, int64_t c1, float *dst);

#endif
