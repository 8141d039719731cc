/* What the model-using commands (score, generate, demo) open together: the
 * checkpoint, a backend, this rank's model shard and the tokenizer. */
#ifndef SRLM_MODEL_SESSION_H
#define SRLM_MODEL_SESSION_H

#include "io/checkpoint.h"
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
void        srlm_model_session_close(srlm_model_session *s);

/* Load the tokenizer later (tokenizer_path NULL = DIR/tokenizer.model), checked
 * against the model's vocab; the session owns it. */
srlm_status srlm_model_session_load_tokenizer(srlm_model_session *s, const char *dir,
                                              const char *tokenizer_path);

#endif
