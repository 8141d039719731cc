/* srlm score: the sum of a response's token log-probs given its prompt, the
 * quantity DPO is built from. One JSON line out per line in. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/flags.h"
#include "backend/factory.h"
#include "model/model_session.h"
#include "io/chat.h"
#include "io/jsonl.h"

typedef struct {
    const char *model, *input, *output, *tokenizer, *system, *backend, *dtype;
    int         raw;
    long        threads;
} score_args;

/* Tokenize one record: ids given directly, or text through the chat format (the
 * one DPO uses: prompt in [INST] ... [/INST], response + EOS) or raw (BOS + prompt). */
static srlm_status record_ids(srlm_model_session *s, const srlm_jsonl_reader *r, const cJSON *rec,
                              const score_args *a, int **p, int *np, int **q, int *nq) {
    int has_ids = 0, has_rids = 0;
    SRLM_CHECK(srlm_json_int_array(r, rec, "prompt_ids", s->model.cfg.vocab_size, p, np, &has_ids));
    if (has_ids) {
        SRLM_CHECK(srlm_json_int_array(r, rec, "response_ids", s->model.cfg.vocab_size, q, nq, &has_rids));
        if (!has_rids) {
            free(*p);
            return SRLM_ERR(SRLM_BAD_INPUT, "%s:%ld: \"prompt_ids\" needs \"response_ids\" beside it",
                            r->path, r->line);
        }
        return SRLM_OK;
    }
    const char *prompt = NULL, *response = NULL;
    SRLM_CHECK(srlm_json_string(r, rec, "prompt", &prompt, NULL));
    SRLM_CHECK(srlm_json_string(r, rec, "response", &response, NULL));
    if (!s->tok)
        return SRLM_ERR(SRLM_BAD_INPUT, "%s:%ld: text records need a tokenizer", r->path, r->line);
    if (a->raw) {
        SRLM_CHECK(srlm_tokenizer_encode(s->tok, prompt, strlen(prompt), 1, 0, p, np));
        srlm_status st = srlm_tokenizer_encode(s->tok, response, strlen(response), 0, 0, q, nq);
        if (st != SRLM_OK) free(*p);
        return st;
    }
    return srlm_chat_encode_pair(s->tok, a->system, prompt, response, p, np, q, nq);
}

static srlm_status score_one(srlm_model_session *s, const int *p, int np, const int *q, int nq,
                             float *logp) {
    /* the last response token (nq >= 1) is only a target: its own row is never used */
    int n = np + nq - 1, slot = 0, zero = 0;
    SRLM_CHECK(srlm_hf_check_seq_len(&s->model.cfg, (int64_t)np + nq, 1, "prompt and response"));
    srlm_kv_cache kv;
    srlm_llama_acts acts;
    int *seq = malloc(sizeof(int) * (size_t)n);
    if (!seq) return SRLM_ERR(SRLM_FAILED, "out of memory");
    memcpy(seq, p, sizeof(int) * (size_t)np);
    memcpy(seq + np, q, sizeof(int) * (size_t)(n - np));
    srlm_status st = srlm_kv_cache_new(&kv, &s->model, 1, n);
    if (st != SRLM_OK) { free(seq); return st; }
    st = srlm_llama_acts_new(&acts, &s->model, n, n);
    if (st == SRLM_OK) {
        srlm_batch b = {1, n, seq, &slot, &zero, &n, 0};
        st = srlm_llama_forward(&s->model, &kv, &acts, &b);
        if (st == SRLM_OK) {
            /* logits row np-1+i predicts response token i (rows np-1 .. n-1) */
            acts.logits = srlm_view_rows(acts.logits, np - 1, nq);
            st = srlm_llama_logprobs(&s->model, &acts, q, nq, logp);
        }
        srlm_llama_acts_free(&acts, s->be);
    }
    srlm_kv_cache_free(&kv, s->be);
    free(seq);
    return st;
}

srlm_status cmd_score(int argc, char **argv) {
    score_args a = {.input = "-", .output = "-"};
    const srlm_flag flags[] = {
        {"model", FLAG_STRING, &a.model, "DIR", "Hugging Face checkpoint folder", 1},
        {"input", FLAG_STRING, &a.input, "FILE", "JSONL of {prompt, response} or {prompt_ids, response_ids} ('-' = stdin)", 0},
        {"output", FLAG_STRING, &a.output, "FILE", "where to write the JSONL results ('-' = stdout)", 0},
        {"tokenizer", FLAG_STRING, &a.tokenizer, "FILE", "SentencePiece model (default DIR/tokenizer.model)", 0},
        {"system", FLAG_STRING, &a.system, "TEXT", "system prompt for the chat format", 0},
        {"raw", FLAG_BOOL, &a.raw, NULL, "no chat format: BOS + prompt text, then the response text", 0},
        {"threads", FLAG_INT, &a.threads, "N", "CPU threads (default: all cores)", 0},
        {"backend", FLAG_STRING, &a.backend, "NAME", "cpu (default), cuda or cpu_guarded", 0},
        {"dtype", FLAG_STRING, &a.dtype, "NAME", "float32 (default) or bfloat16: weights and activations", 0},
    };
    const srlm_command_spec spec = {"score", NULL,
        "Writes, per input line, {\"logp\": sum of the response tokens' log-probs, \"n_tokens\", "
        "\"token_logps\": [...]}. Text records go through the chat format (as DPO does) unless --raw.",
        flags, SRLM_COUNT(flags), 0};
    srlm_parsed_args pa;
    SRLM_CHECK(srlm_parse_flags(&spec, argc, argv, &pa));
    srlm_parsed_args_free(&pa);
    if (pa.help_shown) return SRLM_OK;
    if (a.threads < 0)
        return SRLM_ERR(SRLM_BAD_INPUT, "--threads: expected >= 0 (0 = all cores), found %ld", a.threads);

    srlm_backend_kind backend = SRLM_BACKEND_CPU;
    if (a.backend) SRLM_CHECK(srlm_backend_kind_parse(a.backend, &backend));
    srlm_dtype dtype = SRLM_F32;
    if (a.dtype && srlm_backend_dtype_parse(a.dtype, &dtype) != SRLM_OK) {
        srlm_error_context("--dtype");
        return SRLM_BAD_INPUT;
    }

    srlm_model_session s;
    SRLM_CHECK(srlm_model_session_open_on(&s, a.model, a.tokenizer, 0, backend, dtype, (int)a.threads, 0, NULL));
    srlm_jsonl_reader r;
    FILE *out = NULL;
    srlm_status st;
    SRLM_CHECK_GOTO(srlm_jsonl_open(&r, a.input), st, close_session);
    out = strcmp(a.output, "-") ? fopen(a.output, "w") : stdout;
    if (!out) { st = SRLM_ERR(SRLM_BAD_INPUT, "%s: cannot open for writing", a.output); goto close_reader; }
    for (;;) {
        cJSON *rec;
        SRLM_CHECK_GOTO(srlm_jsonl_next(&r, &rec), st, close_out);
        if (!rec) break;
        /* text records need the tokenizer; it is loaded at the first one, so id-only input works without */
        if (!s.tok && cJSON_GetObjectItem(rec, "prompt")) {
            st = srlm_model_session_load_tokenizer(&s, a.model, a.tokenizer);
            if (st != SRLM_OK) { cJSON_Delete(rec); goto close_out; }
        }
        int *p = NULL, *q = NULL, np = 0, nq = 0;
        st = record_ids(&s, &r, rec, &a, &p, &np, &q, &nq);
        cJSON_Delete(rec);
        if (st != SRLM_OK) goto close_out;
        if (np < 1 || nq < 1) {
            free(p); free(q);
            st = SRLM_ERR(SRLM_BAD_INPUT, "%s:%ld: the prompt and the response need at least one token each "
                          "(found %d and %d)", r.path, r.line, np, nq);
            goto close_out;
        }
        float *lp = malloc(sizeof(float) * (size_t)nq);
        st = lp ? score_one(&s, p, np, q, nq, lp) : SRLM_ERR(SRLM_FAILED, "out of memory");
        if (st == SRLM_OK) {
            double sum = 0;
            for (int i = 0; i < nq; i++) sum += lp[i];
            fprintf(out, "{\"logp\": %.9g, \"n_tokens\": %d, \"token_logps\": [", sum, nq);
            for (int i = 0; i < nq; i++) fprintf(out, "%s%.9g", i ? ", " : "", lp[i]);
            fprintf(out, "]}\n");
        } else {
            srlm_error_context("%s:%ld", r.path, r.line);
        }
        free(lp); free(p); free(q);
        if (st != SRLM_OK) goto close_out;
    }
    st = fflush(out) == 0 ? SRLM_OK : SRLM_ERR(SRLM_FAILED, "%s: write failed", a.output);
close_out:
    if (out && out != stdout) {
        if (fclose(out) != 0 && st == SRLM_OK) st = SRLM_ERR(SRLM_FAILED, "%s: write failed", a.output);
    }
close_reader:
    srlm_jsonl_close(&r);
close_session:
    srlm_model_session_close(&s);
    return st;
}
