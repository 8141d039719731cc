/* What model-using code (score, generate, the loop's phases) opens together:
 * the checkpoint, a backend, this rank's model shard and the tokenizer. */
#ifndef SRLM_MODEL_SESSION_H
#define SRLM_MODEL_SESSION_H

#include "io/checkpoint.h"
#include "io/config.h"
#include "io/tokenizer.h"
#include "model/llama.h"

typedef struct {
    srlm_checkpoint ck;
    srlm_backend   *be;
    srlm_llama      model;
    srlm_tokenizer *tok;      /* NULL when not asked for */
    int             opened;   /* bit 0 ck, bit 1 model */
} srlm_model_session;

/* tokenizer_path: NULL = DIR/tokenizer.model when the caller needs one
 * (need_tokenizer), else none. threads <= 0: all cores. */
srlm_status srlm_model_session_open(srlm_model_session *s, const char *dir,
                                    const char *tokenizer_path, int need_tokenizer, int threads);
/* The same for a tensor-parallel group: collective over tp (NULL = alone); every
 * rank loads only its shard. */
srlm_status srlm_model_session_open_tp(srlm_model_session *s, const char *dir,
                                       const char *tokenizer_path, int need_tokenizer, int threads,
                                       srlm_comm *tp);
/* The same on the backend a config names (backend.name) and GPU `device` (cuda:
 * this rank's index on its node), device-memory backends included (the engine
 * and llama.c reach views only through the ops). The two above use the cpu
 * backend. */
srlm_status srlm_model_session_open_on(srlm_model_session *s, const char *dir,
                                       const char *tokenizer_path, int need_tokenizer,
                                       srlm_backend_kind backend, srlm_dtype dtype, int threads,
                                       int device, srlm_comm *tp);
void        srlm_model_session_close(srlm_model_session *s);

/* Load the tokenizer later (tokenizer_path NULL = DIR/tokenizer.model), checked
 * against the model's vocab; the session owns it. */
srlm_status srlm_model_session_load_tokenizer(srlm_model_session *s, const char *dir,
                                              const char *tokenizer_path);

#endif
