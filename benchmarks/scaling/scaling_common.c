#include "scaling_common.h"

#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../bench_util.h"
#include "io/fsutil.h"
#include "io/hf_config.h"
#include "io/tokenizer.h"
#include "model/llama_init.h"

double scaling_now(void) { return bench_now(); }

double scaling_median(double *v, int n) {
    if (n <= 0) return NAN;
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* ---- the model ---- */

static srlm_status copy_file(const char *from, const char *to) {
    FILE *in = fopen(from, "rb");
    if (!in) return SRLM_ERR(SRLM_BAD_INPUT, "%s: cannot open the tokenizer to copy", from);
    char buf[1 << 16];
    size_t n, total = 0;
    char *data = NULL;
    srlm_status st = SRLM_OK;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) {
        char *grown = realloc(data, total + n);
        if (!grown) { st = SRLM_ERR(SRLM_FAILED, "out of memory copying %s", from); break; }
        data = grown;
        memcpy(data + total, buf, n);
        total += n;
    }
    fclose(in);
    if (st == SRLM_OK) st = srlm_write_file_atomic(to, data ? data : "", total);
    free(data);
    return st;
}

static srlm_status write_model(const char *work, const char *tokenizer_path, const scaling_shape *s, int *vocab) {
    char dir[1100], cfgp[1200], tokp[1200];
    snprintf(dir, sizeof dir, "%s/model", work);
    snprintf(cfgp, sizeof cfgp, "%s/config.json", dir);
    snprintf(tokp, sizeof tokp, "%s/tokenizer.model", dir);
    srlm_tokenizer *tok;
    SRLM_CHECK(srlm_tokenizer_load(&tok, tokenizer_path));
    int v = srlm_tokenizer_vocab_size(tok), bos = srlm_tokenizer_bos(tok), eos = srlm_tokenizer_eos(tok);
    srlm_tokenizer_free(tok);
    *vocab = v;
    if (srlm_path_exists(cfgp) && srlm_path_exists(tokp)) {
        srlm_hf_config old;
        SRLM_CHECK(srlm_hf_config_load(cfgp, &old));
        if (old.vocab_size == v && old.hidden_size == s->dim && old.num_hidden_layers == s->layers &&
            old.intermediate_size == s->ffn && old.num_attention_heads == s->heads)
            return SRLM_OK; /* made by an earlier run with the same shape */
    }
    srlm_hf_config cfg;
    srlm_hf_config_defaults(&cfg);
    cfg.vocab_size = v;
    cfg.hidden_size = s->dim;
    cfg.intermediate_size = s->ffn;
    cfg.num_hidden_layers = s->layers;
    cfg.num_attention_heads = s->heads;
    cfg.num_key_value_heads = s->kv_heads;
    cfg.max_position_embeddings = s->max_pos;
    cfg.head_dim = s->dim / s->heads;
    cfg.bos_token_id = bos;
    cfg.eos_token_id = eos;
    cfg.pad_token_id = -1;
    snprintf(cfg.torch_dtype, sizeof cfg.torch_dtype, "float32");
    SRLM_CHECK(srlm_mkdir_p(dir));
    SRLM_CHECK(srlm_llama_write_random(dir, &cfg, 1, 0.02));
    return copy_file(tokenizer_path, tokp);
}

srlm_status scaling_model_setup(const char *work, const char *tokenizer_path, const scaling_shape *shape,
                                int *vocab) {
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    int32_t ok_vocab[2] = {1, 0};
    srlm_status st = SRLM_OK;
    if (rank == 0) {
        st = write_model(work, tokenizer_path, shape, vocab);
        ok_vocab[0] = st == SRLM_OK;
        ok_vocab[1] = st == SRLM_OK ? *vocab : 0;
    }
    MPI_Bcast(ok_vocab, 2, MPI_INT32_T, 0, MPI_COMM_WORLD);
    if (rank != 0 && !ok_vocab[0]) st = SRLM_ERR(SRLM_FAILED, "rank 0 could not write the benchmark model");
    *vocab = ok_vocab[1];
    return st;
}

/* ---- the call log ---- */

enum { LOG_CAP = 1 << 17 };
static scaling_event g_log[LOG_CAP];
static int g_n = 0, g_on = 0;

void scaling_log_enable(int on) {
    g_on = on;
    if (on) g_n = 0;
}

void scaling_log_record(double t0, int kind, int64_t bytes, int stop_flag) {
    if (!g_on || g_n >= LOG_CAP) return;
    g_log[g_n++] = (scaling_event){t0, scaling_now(), kind, stop_flag, bytes};
}

const scaling_event *scaling_log(int *n) {
    *n = g_n;
    return g_log;
}
