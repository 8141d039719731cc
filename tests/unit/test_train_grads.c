/* Gradients of the training forward/backward vs torch autograd through
 * transformers' LlamaForCausalLM (tests/fixtures/make_train_fixtures.py):
 * the SFT loss with label masking on a right-padded batch, and TRL's sigmoid DPO
 * loss on pairs sharing a prompt. Tolerance: per parameter tensor,
 * ||ours - ref|| / ||ref|| <= 1e-4 (fp32 on both sides; only summation order
 * differs, worth ~1e-6 relative); losses within 1e-5 relative.
 * Also: activation recomputation gives bit-identical gradients; logits in
 * chunks give the same gradients up to summation order; dropout masks are a
 * pure function of the key. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"
#include "model/llama_train.h"
#include "test.h"
#include "train_batch.h"
#include "train/dpo_loss.h"

static cJSON *load_json(const char *dir, const char *name) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *t = test_read_file(path, NULL);
    cJSON *j = t ? cJSON_Parse(t) : NULL;
    free(t);
    if (!j) fprintf(stderr, "cannot read %s\n", path);
    return j;
}

static void compare_grads(const char *what, const srlm_llama_grads *g, const char *ref_path) {
    srlm_safetensors st;
    CHECK_OK(srlm_st_open(&st, ref_path));
    double worst = 0;
    const char *worst_name = "";
    for (int i = 0; i < st.n_tensors; i++) {
        const srlm_st_tensor *t = &st.tensors[i];
        const srlm_view *v = grad_view(g, t->name);
        CHECK_MSG(v != NULL, "%s: no gradient for %s", what, t->name);
        if (!v) continue;
        size_t n = t->nbytes / 4;
        CHECK_MSG((int64_t)n <= v->rows * v->cols, "%s: %s size", what, t->name);
        float *ref = malloc(n * 4);
        srlm_convert_to_f32(ref, t->data, t->dtype, n);
        double num = 0, den = 0;
        const float *ours = v->data; /* contiguous: carved from one flat buffer */
        for (size_t k = 0; k < n; k++) {
            double d = (double)ours[k] - ref[k];
            num += d * d;
            den += (double)ref[k] * ref[k];
        }
        double rel = sqrt(num) / (sqrt(den) > 0 ? sqrt(den) : 1);
        CHECK_MSG(rel <= 1e-4, "%s: %s relative error %.3g", what, t->name, rel);
        if (!(rel <= worst)) { worst = rel; worst_name = t->name; }
        free(ref);
    }
    printf("  %s: %d parameter tensors, worst relative error %.2e (%s)\n", what, st.n_tensors, worst,
           worst_name);
    srlm_st_close(&st);
}


static void check_case(const char *fx, const char *name, srlm_backend *be) {
    char mdir[1024], tdir[1024], path[1200];
    snprintf(mdir, sizeof mdir, "%s/llama/%s", fx, name);
    snprintf(tdir, sizeof tdir, "%s/train/%s", fx, name);
    printf("%s\n", name);
    batch_data bd = {0};
    snprintf(path, sizeof path, "%s/batch.json", tdir);
    if (!load_train_batch(path, &bd)) { CHECK(0); return; }
    srlm_checkpoint ck;
    srlm_llama m;
    int before = test_failures;
    CHECK_OK(srlm_ckpt_open(&ck, mdir));
    if (test_failures == before) CHECK_OK(srlm_llama_load(&m, &ck, be, NULL));
    if (test_failures != before) return;
    srlm_llama_grads g, g2;
    srlm_train_acts a, ar;
    CHECK_OK(srlm_llama_grads_new(&g, &m, 0));
    CHECK_OK(srlm_llama_grads_new(&g2, &m, 0));
    CHECK_OK(srlm_train_acts_new(&a, &m, bd.B * bd.T, 0));
    CHECK_OK(srlm_train_acts_new(&ar, &m, bd.B * bd.T, 1));
    srlm_train_batch tb = {bd.B, bd.T, bd.ids, bd.len, 0.0f, 0, NULL};
    /* the gradients below come from the stacked products: each layer's W_q,
     * W_k, W_v and its W_gate, W_up (and their gradients) as one operand each */
    for (int l = 0; l < m.n_layers; l++) {
        srlm_view w;
        CHECK_OK(srlm_llama_qkv_weight(&m.layers[l], &w));
        CHECK(w.rows == m.layers[l].wq.rows + 2 * m.layers[l].wk.rows && w.data == m.layers[l].wq.data);
        CHECK_OK(srlm_llama_gate_up_weight(&g.layers[l], &w));
        CHECK(w.rows == 2 * m.ffn_local && w.data == g.layers[l].w_gate.data);
    }
    /* views that do not sit one after the other, or differ in width, do not stack */
    {
        srlm_view w;
        CHECK(!srlm_view_stack(&m.layers[0].w_up, &m.layers[0].w_gate, &w));
        CHECK(!srlm_view_stack(&m.layers[0].wk, &m.layers[0].wq, &w)); /* wq sits before wk */
        CHECK(!srlm_view_stack(&m.layers[0].w_up, &m.layers[0].w_down, &w)); /* D vs F columns */
        srlm_llama_layer moved = m.layers[0];
        moved.wv = m.layers[1].wv; /* another layer's: the layout error, not a wrong product */
        CHECK(srlm_llama_qkv_weight(&moved, &w) == SRLM_FAILED);
    }

    /* SFT vs transformers' loss with labels = -100 */
    cJSON *sft = load_json(tdir, "sft.json");
    double loss = train_sft_step(&m, &a, &tb, &bd, &g);
    double want = cJSON_GetObjectItem(sft, "loss")->valuedouble;
    CHECK_MSG(fabs(loss - want) <= 1e-5 * fabs(want), "sft loss %.8f vs %.8f", loss, want);
    printf("  sft loss %.6f (transformers %.6f)\n", loss, want);
    snprintf(path, sizeof path, "%s/sft_grads.safetensors", tdir);
    compare_grads("sft gradients", &g, path);
    cJSON_Delete(sft);

    /* recomputation: identical bits */
    train_sft_step(&m, &ar, &tb, &bd, &g2);
    CHECK_MSG(!memcmp(g.flat.data, g2.flat.data, sizeof(float) * (size_t)m.n_params_local),
              "gradients differ with activation recomputation");

    /* logits in chunks of 5 rows (train.X.logits_chunk), with and without
     * recomputation: the same loss and log-probs, gradients against the reference
     * as before, and close to the unchunked ones (only the LM head's weight
     * gradient sums its chunks in another order) */
    for (int rc = 0; rc < 2; rc++) {
        srlm_train_acts ac;
        CHECK_OK(srlm_train_acts_new_chunked(&ac, &m, bd.B * bd.T, rc, 5));
        CHECK(ac.logits_rows == 5);
        double closs = train_sft_step(&m, &ac, &tb, &bd, &g2);
        CHECK_MSG(fabs(closs - loss) <= 1e-6 * fabs(loss), "chunked logits: loss %.9f vs %.9f", closs, loss);
        double num = 0, den = 0;
        const float *x = g.flat.data, *y = g2.flat.data;
        for (int64_t k = 0; k < m.n_params_local; k++) {
            num += ((double)x[k] - y[k]) * ((double)x[k] - y[k]);
            den += (double)x[k] * x[k];
        }
        CHECK_MSG(sqrt(num / den) <= 1e-6, "chunked logits (recompute %d): gradients differ by %.3g relative", rc,
                  sqrt(num / den));
        printf("  logits in chunks of 5 rows (recompute %d): gradients within %.2e of one chunk\n", rc,
               sqrt(num / den));
        compare_grads(rc ? "sft gradients, chunked logits, recompute" : "sft gradients, chunked logits", &g2, path);
        srlm_train_acts_free(&ac, &m);
    }

    /* dropout: same key -> same gradients (with and without recompute); another key -> others */
    srlm_train_batch td = tb;
    td.dropout = 0.1f;
    td.dropout_key = 99;
    train_sft_step(&m, &a, &td, &bd, &g);
    train_sft_step(&m, &ar, &td, &bd, &g2);
    CHECK_MSG(!memcmp(g.flat.data, g2.flat.data, sizeof(float) * (size_t)m.n_params_local),
              "dropout gradients differ between recompute on and off");
    td.dropout_key = 100;
    train_sft_step(&m, &a, &td, &bd, &g2);
    CHECK_MSG(memcmp(g.flat.data, g2.flat.data, sizeof(float) * (size_t)m.n_params_local) != 0,
              "a different dropout key gave identical gradients");

    /* DPO vs TRL: sequence log-prob = sum over response tokens */
    cJSON *dpo = load_json(tdir, "dpo.json");
    int P = cJSON_GetObjectItem(dpo, "prompt_length")->valueint, N = bd.B * bd.T;
    const cJSON *pairs = cJSON_GetObjectItem(dpo, "pairs");
    int np = cJSON_GetArraySize(pairs);
    float *logp = calloc((size_t)N, sizeof(float)), *dlogp = calloc((size_t)N, sizeof(float));
    CHECK_OK(srlm_llama_train_forward(&m, &a, &tb, logp));
    double seq[8] = {0};
    for (int b = 0; b < bd.B && b < 8; b++)
        for (int t = P - 1; t < bd.len[b] - 1; t++) seq[b] += logp[b * bd.T + t];
    double pc[4], pr[4], rc[4], rr[4], dc[4], dr[4];
    for (int i = 0; i < np && i < 4; i++) {
        int c = cJSON_GetArrayItem(cJSON_GetArrayItem(pairs, i), 0)->valueint;
        int r = cJSON_GetArrayItem(cJSON_GetArrayItem(pairs, i), 1)->valueint;
        pc[i] = seq[c];
        pr[i] = seq[r];
        rc[i] = cJSON_GetArrayItem(cJSON_GetObjectItem(dpo, "ref_chosen"), i)->valuedouble;
        rr[i] = cJSON_GetArrayItem(cJSON_GetObjectItem(dpo, "ref_rejected"), i)->valuedouble;
        double want_c = cJSON_GetArrayItem(cJSON_GetObjectItem(dpo, "policy_chosen"), i)->valuedouble;
        CHECK_MSG(fabs(pc[i] - want_c) <= 1e-4 * fabs(want_c), "pair %d chosen logp %.6f vs %.6f", i, pc[i], want_c);
    }
    srlm_dpo_params dp = {SRLM_DPO_KIND_SIGMOID, cJSON_GetObjectItem(dpo, "beta")->valuedouble, 0.0};
    srlm_dpo_metrics met;
    CHECK_OK(srlm_dpo_compute(&dp, np, pc, pr, rc, rr, NULL, NULL, &met, dc, dr));
    want = cJSON_GetObjectItem(dpo, "loss")->valuedouble;
    CHECK_MSG(fabs(met.loss - want) <= 1e-5 * fabs(want), "dpo loss %.8f vs %.8f", met.loss, want);
    printf("  dpo loss %.6f (TRL %.6f)\n", met.loss, want);
    /* d loss / d logp of each token row = d loss / d (sequence log-prob); a sequence used
     * in two pairs collects both */
    for (int i = 0; i < np; i++) {
        int c = cJSON_GetArrayItem(cJSON_GetArrayItem(pairs, i), 0)->valueint;
        int r = cJSON_GetArrayItem(cJSON_GetArrayItem(pairs, i), 1)->valueint;
        for (int t = P - 1; t < bd.len[c] - 1; t++) dlogp[c * bd.T + t] += (float)dc[i];
        for (int t = P - 1; t < bd.len[r] - 1; t++) dlogp[r * bd.T + t] += (float)dr[i];
    }
    /* g still holds the SFT gradients: written over, not added to */
    CHECK_OK(srlm_llama_train_backward(&m, &a, &tb, dlogp, &g, 0));
    snprintf(path, sizeof path, "%s/dpo_grads.safetensors", tdir);
    compare_grads("dpo gradients", &g, path);
    free(logp);
    free(dlogp);
    cJSON_Delete(dpo);

    srlm_train_acts_free(&a, &m);
    srlm_train_acts_free(&ar, &m);
    srlm_llama_grads_free(&g, &m);
    srlm_llama_grads_free(&g2, &m);
    srlm_llama_free(&m);
    srlm_ckpt_close(&ck);
    free_train_batch(&bd);
}

int main(void) {
    const char *fx = test_env("SRLM_FIXTURES", "tests/fixtures");
    srlm_backend *be;
    CHECK_OK(srlm_backend_cpu_new(&be, 0));
    check_case(fx, "tiny-gqa", be);
    check_case(fx, "tiny-rope", be);
    srlm_backend_free(be);
    TEST_DONE();
}
