/* The calibration of srlm plan's model (src/pipeline/plan.h) from the scaling
 * measurements, and the planner runs that the report compares with them.
 * Pure arithmetic over the planner's C API: no MPI, no file but the configs. */
#ifndef SRLM_SCALING_FIT_H
#define SRLM_SCALING_FIT_H

#include "io/config.h"
#include "pipeline/plan.h"

/* The cluster.* keys (config.h), as numbers. */
typedef struct {
    double gpu_tflops, mfu, hbm_gbps;
    double intra_busbw_gbs, intra_latency_us, inter_busbw_gbs, inter_latency_us;
    int    nics_per_node;
} sc_cluster;

/* Copy c into / out of a config. */
void sc_cluster_apply(srlm_config *cfg, const sc_cluster *c);
void sc_cluster_read(const srlm_config *cfg, sc_cluster *c);

/* What one benchmark run did (its JSON line), in the planner's terms. */
typedef struct {
    int ranks, threads;
    int batch, micro_batch, seq;                      /* training */
    int prompts, samples, prompt_len, new_tokens, per_item; /* generation */
    int dpo;                                          /* training kind */
} sc_workload;

/* The config that describes the benchmark for the planner: model.path (for
 * config.json), tp 1, dp = ranks, the workload, cluster c. Free with
 * srlm_config_free. */
srlm_status sc_bench_config(srlm_config *cfg, const char *model_path, const sc_workload *w, const sc_cluster *c);

/* The planner on one node of w->ranks "GPUs" (one rank each). cfg must outlive p. */
srlm_status sc_plan_bench(const srlm_config *cfg, const srlm_plan_arch *a, const sc_workload *w, srlm_plan *p);

/* Alpha-beta fit of one collective's sweep: latency = the median time of the
 * messages of at most 1 KiB; bus bandwidth from the time at `at_bytes` (the
 * nearest measured size): factor x S / (t - latency), factor 2(n-1)/n for
 * all-reduce and (n-1)/n otherwise. Returns the mean |relative error| of the
 * fitted line over every size in *err. */
typedef struct { double bytes, time_us; } sc_point;
void sc_fit_alpha_beta(const sc_point *pts, int n_pts, double factor, double at_bytes, double *latency_us,
                       double *busbw_gbs, double *err);

/* cluster.hbm_gbps for which the planner's generation time of the benchmark
 * (candidates phase, one group) equals measured_s, with the other keys of c;
 * NAN when no bandwidth gets there (the FLOP term alone is slower). */
double sc_solve_hbm(const char *model_path, const srlm_plan_arch *a, const sc_workload *w, const sc_cluster *c,
                    double measured_s);

#endif
