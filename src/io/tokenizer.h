/* The tokenizer: a C API over SentencePiece (src/io/sentencepiece_shim.cc is the
 * only C++ in srlm). A loaded tokenizer is read-only, so one may be shared by
 * threads.
 *
 * Behaviour is SentencePiece's own, unchanged; worth knowing for Llama-2 style
 * models (identity normalizer, add_dummy_prefix, remove_extra_whitespaces off,
 * byte fallback on):
 *  - encode prepends one "▁" (the dummy prefix) to the text, so "Hello" and
 *    " Hello" encode differently, and encode(a) ++ encode(b) != encode(a + b)
 *    in general; decode drops that one leading space again, so
 *    decode(encode(x)) == x byte for byte, except that a "▁" (U+2581,
 *    SentencePiece's own space mark) in the text comes back as a space.
 *  - characters not in the vocabulary (including "\n" and "\t" in Llama-2)
 *    become byte pieces <0xNN>; there is never an unknown token.
 *  - BOS/EOS are special ids: the text "<s>" is NOT encoded as BOS. */
#ifndef SRLM_TOKENIZER_H
#define SRLM_TOKENIZER_H

#include <stddef.h>

#include "core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct srlm_tokenizer srlm_tokenizer;

/* Load a SentencePiece model file (tokenizer.model). A missing, unreadable or
 * corrupt file is SRLM_BAD_INPUT with a message naming the file. */
srlm_status srlm_tokenizer_load(srlm_tokenizer **tok, const char *model_path);
void        srlm_tokenizer_free(srlm_tokenizer *tok);  /* NULL is fine */

int srlm_tokenizer_vocab_size(const srlm_tokenizer *tok);
int srlm_tokenizer_bos(const srlm_tokenizer *tok);  /* -1 if the model has none */
int srlm_tokenizer_eos(const srlm_tokenizer *tok);  /* -1 if the model has none */
int srlm_tokenizer_unk(const srlm_tokenizer *tok);  /* -1 if the model has none */
int srlm_tokenizer_pad(const srlm_tokenizer *tok);  /* -1 if the model has none (Llama-2) */

/* Encode `len` bytes of UTF-8 text. *ids is malloc'd (never NULL on success,
 * even for zero ids); the caller frees it. add_bos/add_eos prepend/append the
 * special ids (SRLM_BAD_INPUT when the model has none). */
srlm_status srlm_tokenizer_encode(const srlm_tokenizer *tok, const char *text, size_t len,
                                  int add_bos, int add_eos, int **ids, int *n_ids);

/* Decode ids to UTF-8 text: *text is malloc'd and NUL-terminated, *len is its
 * length in bytes. An id outside [0, vocab) is SRLM_BAD_INPUT naming the id and
 * its position. BOS/EOS and other control ids decode to nothing; byte pieces
 * that do not form valid UTF-8 decode to U+FFFD (both as SentencePiece does). */
srlm_status srlm_tokenizer_decode(const srlm_tokenizer *tok, const int *ids, int n_ids,
                                  char **text, size_t *len);

/* The piece string of one id ("▁Hello", "<0x0A>", "<s>"); "" when out of range.
 * Valid as long as the tokenizer is. */
const char *srlm_tokenizer_piece(const srlm_tokenizer *tok, int id);

/* 1 for control ids (BOS, EOS, ...) and 0 otherwise, including out of range. */
int srlm_tokenizer_is_control(const srlm_tokenizer *tok, int id);

/* Train a SentencePiece model from a text file (one sentence per line) and write
 * PREFIX.model (and PREFIX.vocab). `options`: SentencePiece trainer flags
 * separated by spaces, WITHOUT --input / --model_prefix, e.g.
 * "--vocab_size=512 --model_type=bpe --byte_fallback=true
 *  --normalization_rule_name=identity --remove_extra_whitespaces=false".
 * Paths may contain spaces (they are not parsed from the option string).
 * SentencePiece's training log is silenced (errors come back as the status). */
srlm_status srlm_tokenizer_train(const char *input_text_file, const char *model_prefix,
                                 const char *options);

#ifdef __cplusplus
}
#endif

#endif
