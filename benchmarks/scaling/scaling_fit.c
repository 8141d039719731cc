#include "scaling_fit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sc_cluster_apply(srlm_config *cfg, const sc_cluster *c) {
    cfg->cluster.gpu_tflops = c->gpu_tflops;
    cfg->cluster.mfu = c->mfu;
    cfg->cluster.hbm_gbps = c->hbm_gbps;
    cfg->cluster.intra_node_busbw_gbs = c->intra_busbw_gbs;
    cfg->cluster.intra_node_latency_us = c->intra_latency_us;
    cfg->cluster.inter_node_busbw_gbs = c->inter_busbw_gbs;
    cfg->cluster.inter_node_latency_us = c->inter_latency_us;
    cfg->cluster.nics_per_node = c->nics_per_node;
}

void sc_cluster_read(const srlm_config *cfg, sc_cluster *c) {
    c->gpu_tflops = cfg->cluster.gpu_tflops;
    c->mfu = cfg->cluster.mfu;
    c->hbm_gbps = cfg->cluster.hbm_gbps;
    c->intra_busbw_gbs = cfg->cluster.intra_node_busbw_gbs;
    c->intra_latency_us = cfg->cluster.intra_node_latency_us;
    c->inter_busbw_gbs = cfg->cluster.inter_node_busbw_gbs;
    c->inter_latency_us = cfg->cluster.inter_node_latency_us;
    c->nics_per_node = cfg->cluster.nics_per_node;
}

srlm_status sc_bench_config(srlm_config *cfg, const char *model_path, const sc_workload *w, const sc_cluster *c) {
    /* Training: the benchmark's train.sft (or train.dpo) at its sequence length,
     * recomputation and dropout off. Generation: the candidates phase is the
     * benchmark's (prompts x samples, prompt_len via the plan's prompt_tokens,
     * prompts per item); the other phases are whatever they are and unused. */
    const int batch = w->batch > 0 ? w->batch : 8, micro = w->micro_batch > 0 ? w->micro_batch : 2;
    const int seq = w->seq > 0 ? w->seq : 256;
    char yaml[2048];
    snprintf(yaml, sizeof yaml,
             "model: {path: \"%s\", dtype: float32}\nparallel: {tp: 1, dp: 0}\nbackend: {threads: %d}\n"
             "train:\n  sft: {batch_size: %d, micro_batch_size: %d, max_seq_len: %d, recompute: false, dropout: 0.0}\n"
             "  dpo: {batch_size: %d, micro_batch_size: %d, max_seq_len: %d, recompute: false, dropout: 0.0}\n"
             "generate: {samples: %d, max_new_tokens: %d, kv_cache_mb: 2048}\n"
             "self_instruct: {prompts_per_iteration: %d}\nloop: {prompts_per_item: %d}\n",
             model_path, w->threads > 0 ? w->threads : 1, batch, micro, seq, batch, micro, seq,
             w->samples > 0 ? w->samples : 4, w->new_tokens > 0 ? w->new_tokens : 32,
             w->prompts > 0 ? w->prompts : 16, w->per_item > 0 ? w->per_item : 2);
    SRLM_CHECK(srlm_config_load_text(cfg, "scaling benchmark", yaml, 0, NULL));
    sc_cluster_apply(cfg, c);
    return SRLM_OK;
}

srlm_status sc_plan_bench(const srlm_config *cfg, const srlm_plan_arch *a, const sc_workload *w, srlm_plan *p) {
    srlm_plan_opts o;
    srlm_plan_opts_defaults(&o);
    o.nodes = 1;
    o.gpus_per_node = w->ranks;
    o.gpu_mem_gib = 1024; /* fit is not the question here */
    o.prompt_tokens = w->prompt_len > 0 ? w->prompt_len : 32;
    return srlm_plan_compute(cfg, a, &o, p);
}

void sc_fit_alpha_beta(const sc_point *pts, int n_pts, double factor, double at_bytes, double *latency_us,
                       double *busbw_gbs, double *err) {
    double small[64];
    int k = 0, best = -1;
    for (int i = 0; i < n_pts; i++) {
        if (pts[i].bytes <= 1024 && k < 64) small[k++] = pts[i].time_us;
        if (best < 0 || fabs(log(pts[i].bytes / at_bytes)) < fabs(log(pts[best].bytes / at_bytes))) best = i;
    }
    /* median of the small messages */
    for (int i = 1; i < k; i++)
        for (int j = i; j > 0 && small[j - 1] > small[j]; j--) {
            double t = small[j];
            small[j] = small[j - 1];
            small[j - 1] = t;
        }
    *latency_us = k ? (k % 2 ? small[k / 2] : 0.5 * (small[k / 2 - 1] + small[k / 2])) : 0;
    *busbw_gbs = NAN;
    *err = NAN;
    if (best < 0) return;
    double t = (pts[best].time_us - *latency_us) * 1e-6;
    if (!(t > 0)) return;
    *busbw_gbs = factor * pts[best].bytes / t / 1e9;
    double e = 0;
    for (int i = 0; i < n_pts; i++) {
        double model = *latency_us + factor * pts[i].bytes / (*busbw_gbs * 1e9) * 1e6;
        e += fabs(model - pts[i].time_us) / pts[i].time_us;
    }
    *err = n_pts ? e / n_pts : NAN;
}

static double gen_time(const char *model_path, const srlm_plan_arch *a, const sc_workload *w, const sc_cluster *c,
                       double hbm) {
    srlm_config cfg;
    sc_cluster cc = *c;
    cc.hbm_gbps = hbm;
    sc_workload one = *w;
    one.ranks = 1;
    srlm_plan p;
    double t = NAN;
    if (sc_bench_config(&cfg, model_path, &one, &cc) != SRLM_OK) return NAN;
    if (sc_plan_bench(&cfg, a, &one, &p) == SRLM_OK) t = p.candidates.t_total;
    srlm_config_free(&cfg);
    return t;
}

double sc_solve_hbm(const char *model_path, const srlm_plan_arch *a, const sc_workload *w, const sc_cluster *c,
                    double measured_s) {
    /* the modelled time only falls as the bandwidth grows: bisect on a log scale */
    double lo = 1e-3, hi = 1e7;
    double t_lo = gen_time(model_path, a, w, c, lo), t_hi = gen_time(model_path, a, w, c, hi);
    if (!(t_lo >= measured_s) || !(t_hi <= measured_s)) return NAN;
    for (int i = 0; i < 200 && hi / lo > 1 + 1e-9; i++) {
        double mid = sqrt(lo * hi);
        if (gen_time(model_path, a, w, c, mid) > measured_s) lo = mid;
        else hi = mid;
    }
    return sqrt(lo * hi);
}
