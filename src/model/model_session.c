#include "model/model_session.h"

#include <stdio.h>
#include <string.h>

#include "backend/factory.h"

srlm_status srlm_model_session_load_tokenizer(srlm_model_session *s, const char *dir,
                                              const char *tokenizer_path) {
    char path[1200];
    if (!tokenizer_path) {
        snprintf(path, sizeof path, "%s/tokenizer.model", dir);
        tokenizer_path = path;
    }
    SRLM_CHECK(srlm_tokenizer_load(&s->tok, tokenizer_path));
    int tv = srlm_tokenizer_vocab_size(s->tok), mv = s->model.cfg.vocab_size;
    if (tv > mv)
        return SRLM_ERR(SRLM_BAD_INPUT, "%s has %d pieces but the model in %s has only %d embeddings "
                        "(vocab_size): they do not belong together", tokenizer_path, tv, dir, mv);
    return SRLM_OK;
}

srlm_status srlm_model_session_open(srlm_model_session *s, const char *dir,
                                    const char *tokenizer_path, int need_tokenizer, int threads) {
    return srlm_model_session_open_tp(s, dir, tokenizer_path, need_tokenizer, threads, NULL);
}

srlm_status srlm_model_session_open_tp(srlm_model_session *s, const char *dir,
                                       const char *tokenizer_path, int need_tokenizer, int threads,
                                       srlm_comm *tp) {
    return srlm_model_session_open_on(s, dir, tokenizer_path, need_tokenizer, SRLM_BACKEND_CPU, SRLM_F32,
                                      threads, 0, tp);
}

srlm_status srlm_model_session_open_on(srlm_model_session *s, const char *dir,
                                       const char *tokenizer_path, int need_tokenizer,
                                       srlm_backend_kind backend, srlm_dtype dtype, int threads,
                                       int device, srlm_comm *tp) {
    memset(s, 0, sizeof *s);
    srlm_status st;
    /* the backend first: a refused backend.name fails before any loading */
    SRLM_CHECK_GOTO(srlm_backend_new(backend, threads, device, &s->be), st, fail);
    s->be->dtype = dtype;
    SRLM_CHECK_GOTO(srlm_ckpt_open(&s->ck, dir), st, fail);
    s->opened |= 1;
    SRLM_CHECK_GOTO(srlm_llama_load(&s->model, &s->ck, s->be, tp), st, fail);
    s->opened |= 2;
    if (need_tokenizer || tokenizer_path)
        SRLM_CHECK_GOTO(srlm_model_session_load_tokenizer(s, dir, tokenizer_path), st, fail);
    return SRLM_OK;
fail:
    srlm_model_session_close(s);
    return st;
}

void srlm_model_session_close(srlm_model_session *s) {
    srlm_tokenizer_free(s->tok);
    if (s->opened & 2) srlm_llama_free(&s->model);
    if (s->be) srlm_backend_free(s->be);
    if (s->opened & 1) srlm_ckpt_close(&s->ck);
    memset(s, 0, sizeof *s);
}
