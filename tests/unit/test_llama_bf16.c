/* backend.dtype bfloat16 on the CPU backend (the CUDA backend's twin): weights,
 * activations and the KV cache in bf16, every op computing in fp32 and rounding
 * its output to bf16 once; gradients, master weights and lse in fp32.
 *
 * The yardstick is transformers itself run in bfloat16 on the same inputs
 * (tests/fixtures/make_bf16_fixtures.py): "within bf16 tolerance" means no
 * further from the fp32 reference than a factor BF16_FACTOR times the distance
 * torch's own bf16 run is from it. The factor is 2: two computations that each
 * round the same intermediates to 8 mantissa bits, at different points, can each
 * be off by the bf16 error; a factor 2 allows for ours rounding at other places
 * than torch does (once per op, where torch's eager ops round several times,
 * e.g. inside RoPE) without letting a real error (a wrong weight, a missed
 * rounding of a whole tensor) through: those give errors of order 1.
 *  - logits (alone, batched and incremental) against the fp32 reference;
 *  - also more than the fp32 path's tolerance (1e-4) away from it: bf16 is in effect;
 *  - SFT loss and gradients against the fp32 reference, per tensor;
 *  - activation recomputation gives identical bits in bf16 too;
 *  - srlm_llama_load_for_training keeps the file's fp32 values in master and
 *    their round-to-nearest-even in params, bit for bit. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"
#include "model/llama_train.h"
#include "test.h"
#include "train_batch.h"

#define BF16_FACTOR 2.0
#define FP32_TOL 1e-4

static cJSON *load_json(const char *path) {
    char *t = test_read_file(path, NULL);
    cJSON *j = t ? cJSON_Parse(t) : NULL;
    free(t);
    CHECK_MSG(j != NULL, "cannot read %s", path);
    return j;
}

/* max |logits row r (our rows row0..) - ref row (ref_row0 + r)| over the real vocab */
static double max_diff(srlm_llama *m, srlm_llama_acts *a, int row0, int nrows, const cJSON *ref, int ref_row0) {
    const int V = m->cfg.vocab_size;
    float *buf = malloc(sizeof(float) * (size_t)a->max_logit_rows * m->vocab_local);
    srlm_view all = srlm_view_rows(a->logits, 0, a->max_logit_rows);
    CHECK_OK(m->be->ops->download(m->be, buf, &all));
    double worst = 0;
    for (int r = 0; r < nrows; r++)
        for (int j = 0; j < V; j++) {
            double d = fabs(buf[(size_t)(row0 + r) * m->vocab_local + j] -
                            cJSON_GetArrayItem(ref, (ref_row0 + r) * V + j)->valuedouble);
            if (!(d <= worst)) worst = d;
        }
    free(buf);
    return worst;
}

static void check_forward(const char *fx, const char *name, srlm_backend *be) {
    char dir[1024], path[1200];
    snprintf(dir, sizeof dir, "%s/llama/%s", fx, name);
    snprintf(path, sizeof path, "%s/reference.json", dir);
    cJSON *ref = load_json(path);
    snprintf(path, sizeof path, "%s/reference_bf16.json", dir);
    cJSON *ref16 = load_json(path);
    if (!ref || !ref16) { cJSON_Delete(ref); cJSON_Delete(ref16); return; }
    const double torch_err = cJSON_GetObjectItem(ref16, "max_abs_diff_vs_fp32")->valuedouble;
    const double bound = BF16_FACTOR * torch_err;
    srlm_checkpoint ck;
    srlm_llama m;
    int before = test_failures;
    CHECK_OK(srlm_ckpt_open(&ck, dir));
    if (test_failures == before) CHECK_OK(srlm_llama_load(&m, &ck, be, NULL));
    if (test_failures != before) { cJSON_Delete(ref); cJSON_Delete(ref16); return; }
    CHECK_MSG(m.params.dtype == SRLM_BF16, "%s: weights are %s, expected BF16", name, srlm_dtype_name(m.params.dtype));
    CHECK_MSG(m.master.data == NULL, "%s: an inference load keeps no master weights", name);

    const cJSON *seqs = cJSON_GetObjectItem(ref, "sequences"), *seqs16 = cJSON_GetObjectItem(ref16, "sequences");
    const int n_seq = cJSON_GetArraySize(seqs);
    CHECK_MSG(n_seq >= 1 && n_seq <= 16 && cJSON_GetArraySize(seqs16) == n_seq, "%s: %d sequences, expected 1..16 "
              "in both references", name, n_seq);
    if (n_seq < 1 || n_seq > 16 || cJSON_GetArraySize(seqs16) != n_seq) return;
    int T = 0, lens[16], *ids[16];
    for (int s = 0; s < n_seq && s < 16; s++) {
        const cJSON *arr = cJSON_GetObjectItem(cJSON_GetArrayItem(seqs, s), "ids");
        lens[s] = cJSON_GetArraySize(arr);
        ids[s] = malloc(sizeof(int) * (size_t)lens[s]);
        for (int t = 0; t < lens[s]; t++) ids[s][t] = cJSON_GetArrayItem(arr, t)->valueint;
        if (lens[s] > T) T = lens[s];
    }
    srlm_kv_cache kv;
    srlm_llama_acts a;
    CHECK_OK(srlm_kv_cache_new(&kv, &m, n_seq, T));
    CHECK_OK(srlm_llama_acts_new(&a, &m, n_seq * T, n_seq * T));
    double worst_alone = 0, worst_vs16 = 0, least = INFINITY;
    for (int s = 0; s < n_seq; s++) {
        int slot = 0, past = 0;
        srlm_batch b = {1, lens[s], ids[s], &slot, &past, &lens[s], 0};
        CHECK_OK(srlm_llama_forward(&m, &kv, &a, &b));
        const cJSON *want = cJSON_GetObjectItem(cJSON_GetArrayItem(seqs, s), "logits");
        const cJSON *want16 = cJSON_GetObjectItem(cJSON_GetArrayItem(seqs16, s), "logits");
        double d = max_diff(&m, &a, 0, lens[s], want, 0), d16 = max_diff(&m, &a, 0, lens[s], want16, 0);
        if (!(d <= worst_alone)) worst_alone = d;
        if (!(d16 <= worst_vs16)) worst_vs16 = d16;
        if (d < least) least = d;
    }
    CHECK_MSG(worst_alone <= bound, "%s: max |logit - fp32 reference| %.3g exceeds %.1f x torch's bf16 error %.3g",
              name, worst_alone, BF16_FACTOR, torch_err);
    CHECK_MSG(least > FP32_TOL, "%s: a sequence's logits are within %.3g of fp32: is the model really bf16?", name,
              least);
    printf("%s: logits vs fp32 reference %.3g (torch bf16 %.3g, bound %.3g), vs torch bf16 %.3g\n", name,
           worst_alone, torch_err, bound, worst_vs16);

    /* batched, right-padded, slots reversed; then incremental decoding */
    int *flat = calloc((size_t)n_seq * T, sizeof(int)), slots[16], past[16] = {0};
    for (int s = 0; s < n_seq; s++) {
        memcpy(flat + (size_t)s * T, ids[s], sizeof(int) * (size_t)lens[s]);
        for (int t = lens[s]; t < T; t++) flat[(size_t)s * T + t] = 3;
        slots[s] = n_seq - 1 - s;
    }
    srlm_batch bb = {n_seq, T, flat, slots, past, lens, 0};
    CHECK_OK(srlm_llama_forward(&m, &kv, &a, &bb));
    double worst_batch = 0, worst_inc = 0;
    for (int s = 0; s < n_seq; s++) {
        double d = max_diff(&m, &a, s * T, lens[s], cJSON_GetObjectItem(cJSON_GetArrayItem(seqs, s), "logits"), 0);
        if (!(d <= worst_batch)) worst_batch = d;
    }
    for (int s = 0; s < n_seq; s++) {
        const cJSON *want = cJSON_GetObjectItem(cJSON_GetArrayItem(seqs, s), "logits");
        int pre = lens[s] / 2 > 0 ? lens[s] / 2 : 1, slot = 1, np = 0, nn = pre;
        srlm_batch pb = {1, pre, ids[s], &slot, &np, &nn, 1};
        CHECK_OK(srlm_llama_forward(&m, &kv, &a, &pb));
        double d = max_diff(&m, &a, 0, 1, want, pre - 1);
        if (!(d <= worst_inc)) worst_inc = d;
        for (int t = pre; t < lens[s]; t++) {
            np = t;
            nn = 1;
            srlm_batch sb = {1, 1, ids[s] + t, &slot, &np, &nn, 1};
            CHECK_OK(srlm_llama_forward(&m, &kv, &a, &sb));
            d = max_diff(&m, &a, 0, 1, want, t);
            if (!(d <= worst_inc)) worst_inc = d;
        }
    }
    CHECK_MSG(worst_batch <= bound, "%s batched: max |dlogit| %.3g > %.3g", name, worst_batch, bound);
    CHECK_MSG(worst_inc <= bound, "%s incremental: max |dlogit| %.3g > %.3g", name, worst_inc, bound);
    printf("%s: batched %.3g, incremental %.3g\n", name, worst_batch, worst_inc);

    free(flat);
    for (int s = 0; s < n_seq; s++) free(ids[s]);
    srlm_llama_acts_free(&a, be);
    srlm_kv_cache_free(&kv, be);
    srlm_llama_free(&m);
    srlm_ckpt_close(&ck);
    cJSON_Delete(ref);
    cJSON_Delete(ref16);
}

/* master = the file's fp32 values, params = their rounding, bit for bit */
static void check_master(const srlm_llama *m, const srlm_checkpoint *ck, const char *name) {
    const srlm_st_tensor *t = NULL;
    for (int f = 0; f < ck->n_files && !t; f++)
        for (int i = 0; i < ck->files[f].n_tensors; i++)
            if (!strcmp(ck->files[f].tensors[i].name, "model.layers.0.self_attn.q_proj.weight"))
                t = &ck->files[f].tensors[i];
    CHECK_MSG(t != NULL, "%s: no q_proj in the checkpoint", name);
    if (!t) return;
    const size_t n = (size_t)(m->layers[0].wq.rows * m->layers[0].wq.cols);
    float *file = malloc(n * sizeof(float));
    srlm_convert_to_f32(file, t->data, t->dtype, n);
    const float *master = srlm_llama_record_view(m, m->layers[0].wq).data;
    const uint16_t *params = m->layers[0].wq.data;
    size_t bad_master = 0, bad_params = 0;
    for (size_t k = 0; k < n; k++) {
        bad_master += memcmp(&master[k], &file[k], sizeof(float)) != 0;
        bad_params += params[k] != srlm_f32_to_bf16(file[k]);
    }
    CHECK_MSG(bad_master == 0, "%s: %zu of %zu master weights differ from the file", name, bad_master, n);
    CHECK_MSG(bad_params == 0, "%s: %zu of %zu bf16 weights are not the rounding of the master", name, bad_params, n);
    free(file);
}

static void check_grads(const char *fx, const char *name, srlm_backend *be) {
    char mdir[1024], tdir[1024], path[1200];
    snprintf(mdir, sizeof mdir, "%s/llama/%s", fx, name);
    snprintf(tdir, sizeof tdir, "%s/train/%s", fx, name);
    batch_data bd = {0};
    snprintf(path, sizeof path, "%s/batch.json", tdir);
    if (!load_train_batch(path, &bd)) { CHECK_MSG(0, "cannot read %s", path); return; }
    snprintf(path, sizeof path, "%s/bf16.json", tdir);
    cJSON *ref16 = load_json(path);
    snprintf(path, sizeof path, "%s/sft.json", tdir);
    cJSON *sft = load_json(path);
    srlm_checkpoint ck;
    srlm_llama m;
    int before = test_failures;
    if (ref16 && sft) CHECK_OK(srlm_ckpt_open(&ck, mdir));
    if (test_failures == before) CHECK_OK(srlm_llama_load_for_training(&m, &ck, be, NULL));
    if (test_failures != before || !ref16 || !sft) { cJSON_Delete(ref16); cJSON_Delete(sft); free_train_batch(&bd); return; }
    CHECK_MSG(m.master.data != NULL && m.master.dtype == SRLM_F32, "%s: training load without fp32 master weights", name);
    check_master(&m, &ck, name);

    srlm_llama_grads g, g2;
    srlm_train_acts a, ar;
    CHECK_OK(srlm_llama_grads_new(&g, &m, 0));
    CHECK_OK(srlm_llama_grads_new(&g2, &m, 0));
    CHECK_OK(srlm_train_acts_new(&a, &m, bd.B * bd.T, 0));
    CHECK_OK(srlm_train_acts_new(&ar, &m, bd.B * bd.T, 1));
    srlm_train_batch tb = {bd.B, bd.T, bd.ids, bd.len, 0.0f, 0, NULL};
    const double loss = train_sft_step(&m, &a, &tb, &bd, &g);
    const double want = cJSON_GetObjectItem(sft, "loss")->valuedouble;
    const double loss16 = cJSON_GetObjectItem(ref16, "sft_loss_bf16")->valuedouble;
    const double loss_bound = BF16_FACTOR * fabs(loss16 - want);
    CHECK_MSG(fabs(loss - want) <= loss_bound, "%s: bf16 sft loss %.6f vs fp32 %.6f: off by more than %.1f x torch's "
              "bf16 %.6f", name, loss, want, BF16_FACTOR, loss16);
    printf("%s: sft loss %.6f (fp32 reference %.6f, torch bf16 %.6f)\n", name, loss, want, loss16);

    const cJSON *errs = cJSON_GetObjectItem(ref16, "sft_grad_rel_err");
    const double torch_max = cJSON_GetObjectItem(ref16, "sft_grad_rel_err_max")->valuedouble;
    srlm_safetensors st;
    snprintf(path, sizeof path, "%s/sft_grads.safetensors", tdir);
    CHECK_OK(srlm_st_open(&st, path));
    double worst = 0, worst_ratio = 0;
    const char *worst_name = "";
    for (int i = 0; i < st.n_tensors; i++) {
        const srlm_st_tensor *t = &st.tensors[i];
        const srlm_view *v = grad_view(&g, t->name);
        CHECK_MSG(v != NULL, "%s: no gradient for %s", name, t->name);
        if (!v) continue;
        const size_t n = t->nbytes / 4;
        float *ref = malloc(n * sizeof(float));
        srlm_convert_to_f32(ref, t->data, t->dtype, n);
        const float *ours = v->data; /* F32: gradients stay fp32 */
        double num = 0, den = 0;
        for (size_t k = 0; k < n; k++) {
            double d = (double)ours[k] - ref[k];
            num += d * d;
            den += (double)ref[k] * ref[k];
        }
        free(ref);
        const double rel = sqrt(num) / (den > 0 ? sqrt(den) : 1);
        const cJSON *te = cJSON_GetObjectItem(errs, t->name);
        /* per tensor against torch's error on that tensor, with the case's worst as a floor:
         * a tensor torch happens to get nearly exact is not held to that luck */
        const double yard = te ? fmax(te->valuedouble, torch_max / 4) : torch_max;
        CHECK_MSG(te != NULL, "%s: bf16.json lacks %s", name, t->name);
        CHECK_MSG(rel <= BF16_FACTOR * yard, "%s: %s gradient relative error %.3g > %.1f x %.3g", name, t->name, rel,
                  BF16_FACTOR, yard);
        if (rel > worst) { worst = rel; worst_name = t->name; }
        if (rel / yard > worst_ratio) worst_ratio = rel / yard;
    }
    printf("%s: sft gradients: worst relative error %.3g (%s); torch bf16 worst %.3g; largest ratio to the "
           "yardstick %.2f\n", name, worst, worst_name, torch_max, worst_ratio);
    srlm_st_close(&st); /* worst_name points into it */

    train_sft_step(&m, &ar, &tb, &bd, &g2);
    CHECK_MSG(!memcmp(g.flat.data, g2.flat.data, sizeof(float) * (size_t)m.n_params_local),
              "%s: bf16 gradients differ with activation recomputation", name);

    srlm_train_acts_free(&a, &m);
    srlm_train_acts_free(&ar, &m);
    srlm_llama_grads_free(&g, &m);
    srlm_llama_grads_free(&g2, &m);
    srlm_llama_free(&m);
    srlm_ckpt_close(&ck);
    cJSON_Delete(ref16);
    cJSON_Delete(sft);
    free_train_batch(&bd);
}

int main(void) {
    const char *fx = test_env("SRLM_FIXTURES", "tests/fixtures");
    srlm_backend *be;
    CHECK_OK(srlm_backend_cpu_new(&be, 0));
    be->dtype = SRLM_BF16;
    check_forward(fx, "tiny-gqa", be);
    check_forward(fx, "tiny-rope", be);
    check_forward(fx, "tiny-bf16", be);
    check_grads(fx, "tiny-gqa", be);
    check_grads(fx, "tiny-rope", be);
    srlm_backend_free(be);
    TEST_DONE();
}
