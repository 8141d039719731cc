/* From the scaling measurements to the planner's calibration, the comparison
 * of measured and modelled times, the Llama-2-70B extrapolation and the plots.
 *
 *   scaling_report RESULTS_DIR MODEL_DIR CONFIG_70B
 *
 * Reads RESULTS_DIR/measurements.jsonl (the JSON lines of scaling_train,
 * scaling_gen and scaling_comm) and RESULTS_DIR/machine.json (written by
 * run.sh); MODEL_DIR/config.json gives the benchmark model's shapes to the
 * planner. Writes into RESULTS_DIR: calibrated-HOST.yaml (cluster.* keys),
 * scaling.json (every number below), scaling.md (the tables),
 * scaling-measured.svg and scaling-70b.svg. The method is in README.md. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/hf_config.h"
#include "io/svg_plot.h"
#include "pipeline/parts.h"
#include "scaling_fit.h"

typedef struct {
    cJSON     **recs;
    int         n;
    const char *host, *cpu, *date;
    int         nproc;
    char        label[512]; /* the machine, in one line: on every table and plot */
} inputs;

static double num(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static const char *str(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

/* The run of (bench, mode, ranks, threads); among repeats the one with the
 * median time. NULL when none. */
static const cJSON *find(const inputs *in, const char *bench, const char *mode, int ranks, int threads) {
    const cJSON *hit[64];
    int k = 0;
    const char *tkey = !strcmp(bench, "train") ? "step_s" : "phase_s";
    for (int i = 0; i < in->n && k < 64; i++) {
        const cJSON *r = in->recs[i];
        if (!strcmp(str(r, "bench"), bench) && !strcmp(str(r, "mode"), mode) && num(r, "ranks") == ranks &&
            num(r, "threads") == threads && isfinite(num(r, tkey)))
            hit[k++] = r;
    }
    for (int i = 1; i < k; i++)
        for (int j = i; j > 0 && num(hit[j - 1], tkey) > num(hit[j], tkey); j--) {
            const cJSON *t = hit[j];
            hit[j] = hit[j - 1];
            hit[j - 1] = t;
        }
    return k ? hit[(k - 1) / 2] : NULL;
}

static int repeats(const inputs *in, const char *bench, const char *mode, int ranks, int threads) {
    int k = 0;
    for (int i = 0; i < in->n; i++) {
        const cJSON *r = in->recs[i];
        k += !strcmp(str(r, "bench"), bench) && !strcmp(str(r, "mode"), mode) && num(r, "ranks") == ranks &&
             num(r, "threads") == threads;
    }
    return k;
}

static sc_workload workload(const cJSON *r) {
    sc_workload w = {0};
    w.ranks = (int)num(r, "ranks");
    w.threads = (int)num(r, "threads");
    w.batch = (int)num(r, "batch");
    w.micro_batch = (int)num(r, "micro_batch");
    w.seq = (int)num(r, "seq");
    w.prompts = (int)num(r, "prompts");
    w.samples = (int)num(r, "samples");
    w.prompt_len = (int)num(r, "prompt_len");
    w.new_tokens = (int)num(r, "new_tokens");
    w.per_item = (int)num(r, "per_item");
    w.dpo = !strcmp(str(r, "kind"), "dpo");
    return w;
}

/* ---- the planner on one benchmark run ---- */

typedef struct {
    double compute, tp, dp, optimizer, step; /* training: seconds per optimizer step */
    double gen;                              /* generation: the phase */
    double flops;                            /* training: per rank per step */
    int64_t params_shard;
} modelled;

static srlm_status model_run(const char *model_dir, const srlm_plan_arch *a, const sc_workload *w,
                             const sc_cluster *c, modelled *m) {
    srlm_config cfg;
    srlm_plan p;
    SRLM_CHECK(sc_bench_config(&cfg, model_dir, w, c));
    srlm_status st = sc_plan_bench(&cfg, a, w, &p);
    if (st == SRLM_OK) {
        const srlm_plan_train *t = w->dpo ? &p.dpo : &p.sft;
        *m = (modelled){t->t_compute, t->t_tp, t->t_dp, t->t_optimizer, t->t_step, p.candidates.t_total,
                        t->micro_steps * t->flops_micro, p.params_shard};
    }
    srlm_config_free(&cfg);
    return st;
}

/* The same with the cores shared: ranks x threads > nproc gives each rank
 * nproc / (ranks x threads) of its compute and memory rates. */
static double core_share(const inputs *in, const sc_workload *w) {
    double s = (double)in->nproc / ((double)w->ranks * w->threads);
    return s < 1 ? s : 1;
}

/* ---- output helpers ---- */

static cJSON *jobj(cJSON *parent, const char *name) {
    cJSON *o = cJSON_CreateObject();
    if (name) cJSON_AddItemToObject(parent, name, o);
    else cJSON_AddItemToArray(parent, o);
    return o;
}

static void jnum(cJSON *o, const char *k, double v) { cJSON_AddNumberToObject(o, k, v); }

static double eff(double base, double t, int ranks, int strong) {
    return strong ? base / (ranks * t) : base / t;
}

/* ---- the report ---- */

enum { MAX_RANKS = 3 };
static const int RANKS[MAX_RANKS] = {1, 2, 4};

typedef struct {
    double meas[MAX_RANKS], model[MAX_RANKS], shared[MAX_RANKS]; /* times; NAN when missing */
} series3;

static void efficiencies(const series3 *s, int strong, double e[3][MAX_RANKS]) {
    const double *t[3] = {s->meas, s->model, s->shared};
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < MAX_RANKS; i++) e[k][i] = eff(t[k][0], t[k][i], RANKS[i], strong);
}

static srlm_status write_text(const char *dir, const char *name, const char *text) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) return SRLM_ERR(SRLM_FAILED, "%s: cannot write", path);
    fputs(text, f);
    return fclose(f) == 0 ? SRLM_OK : SRLM_ERR(SRLM_FAILED, "%s: write failed", path);
}

/* A growing string for the markdown. */
typedef struct { char *s; size_t n, cap; } sbuf;
static void sb(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb(sbuf *b, const char *fmt, ...) {
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int k = vsnprintf(b->s ? b->s + b->n : NULL, b->s ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) return;
        if (b->s && b->n + (size_t)k < b->cap) { b->n += (size_t)k; return; }
        size_t cap = (b->cap + (size_t)k + 1) * 2;
        char *g = realloc(b->s, cap);
        if (!g) return;
        b->s = g;
        b->cap = cap;
    }
}

static const char *fmt_s(char *buf, double v) {
    if (!isfinite(v)) snprintf(buf, 32, "-");
    else if (v >= 1) snprintf(buf, 32, "%.3f s", v);
    else snprintf(buf, 32, "%.1f ms", v * 1e3);
    return buf;
}

static const char *fmt_x(char *buf, double v) {
    if (!isfinite(v)) snprintf(buf, 32, "-");
    else snprintf(buf, 32, "%.2f", v);
    return buf;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: scaling_report RESULTS_DIR MODEL_DIR CONFIG_70B\n");
        return 2;
    }
    const char *dir = argv[1], *model_dir = argv[2], *cfg70_path = argv[3];
    inputs in = {0};
    char path[1200];
    cJSON **mrecs = NULL;
    int mn = 0;
    srlm_status st;
    snprintf(path, sizeof path, "%s/measurements.jsonl", dir);
    if ((st = srlm_jsonl_load_all(path, &in.recs, &in.n)) != SRLM_OK) goto fail;
    snprintf(path, sizeof path, "%s/machine.json", dir);
    if ((st = srlm_jsonl_load_all(path, &mrecs, &mn)) != SRLM_OK) goto fail;
    if (mn < 1) { st = SRLM_ERR(SRLM_BAD_INPUT, "%s: empty", path); goto fail; }
    in.host = str(mrecs[0], "host");
    in.cpu = str(mrecs[0], "cpu");
    in.date = str(mrecs[0], "date");
    in.nproc = (int)num(mrecs[0], "nproc");
    if (in.nproc < 1) in.nproc = 1;
    snprintf(in.label, sizeof in.label, "%s, nproc %d, host %s, %s", in.cpu, in.nproc, in.host, in.date);

    srlm_hf_config hf;
    srlm_plan_arch arch;
    snprintf(path, sizeof path, "%s/config.json", model_dir);
    if ((st = srlm_hf_config_load(path, &hf)) != SRLM_OK) goto fail;
    srlm_plan_arch_from_hf(&hf, &arch);

    /* ---- calibration ---- */
    const cJSON *t1 = find(&in, "train", "strong", 1, 1), *g1 = find(&in, "gen", "strong", 1, 1);
    if (!t1 || !g1) {
        st = SRLM_ERR(SRLM_BAD_INPUT, "%s/measurements.jsonl: the 1-rank, 1-thread strong-scaling runs of train and "
                      "gen "
                      "are needed for the calibration", dir);
        goto fail;
    }
    srlm_config defaults;
    if ((st = srlm_config_defaults(&defaults)) != SRLM_OK) goto fail;
    sc_cluster cal;
    sc_cluster_read(&defaults, &cal);
    srlm_config_free(&defaults);
    cal.gpu_tflops = 1;
    cal.mfu = 1;
    sc_workload w1 = workload(t1);
    modelled unit;
    if ((st = model_run(model_dir, &arch, &w1, &cal, &unit)) != SRLM_OK) goto fail;
    const double compute1 = num(t1, "compute_s") - num(t1, "adamw_s"); /* what FLOPs / rate models */
    cal.gpu_tflops = unit.compute / compute1;                          /* unit.compute = FLOPs / 1e12 */
    const double hbm_opt = 30.0 * (double)unit.params_shard / num(t1, "adamw_s") / 1e9;

    /* collectives: the largest rank count that does not oversubscribe */
    const double grad_bytes = 4.0 * (double)srlm_plan_param_count(&arch);
    int comm_ranks[8], n_comm = 0;
    for (int i = 0; i < in.n; i++) {
        if (strcmp(str(in.recs[i], "bench"), "comm")) continue;
        int r = (int)num(in.recs[i], "ranks"), seen = 0;
        for (int j = 0; j < n_comm; j++) seen |= comm_ranks[j] == r;
        if (!seen && n_comm < 8) comm_ranks[n_comm++] = r;
    }
    cJSON *root = cJSON_CreateObject(), *jm = jobj(root, "machine");
    cJSON_AddStringToObject(jm, "label", in.label);
    cJSON_AddItemToObject(jm, "details", cJSON_Duplicate(mrecs[0], 1));
    cJSON *jcomm = cJSON_AddArrayToObject(root, "collectives");
    int cal_ranks = 0;
    double cal_lat = NAN, cal_bw = NAN;
    const char *ops[3] = {"allreduce", "reduce_scatter", "allgather"};
    for (int c = 0; c < n_comm; c++)
        for (int o = 0; o < 3; o++) {
            sc_point pts[64];
            int np = 0, n = comm_ranks[c];
            for (int i = 0; i < in.n && np < 64; i++)
                if (!strcmp(str(in.recs[i], "bench"), "comm") && num(in.recs[i], "ranks") == n &&
                    !strcmp(str(in.recs[i], "op"), ops[o]))
                    pts[np++] = (sc_point){num(in.recs[i], "bytes"), num(in.recs[i], "time_us")};
            double factor = o == 0 ? 2.0 * (n - 1) / n : (double)(n - 1) / n, lat, bw, err;
            sc_fit_alpha_beta(pts, np, factor, grad_bytes, &lat, &bw, &err);
            cJSON *e = jobj(jcomm, NULL);
            cJSON_AddStringToObject(e, "op", ops[o]);
            jnum(e, "ranks", n);
            jnum(e, "latency_us", lat);
            jnum(e, "busbw_gbs", bw);
            jnum(e, "fit_bytes", grad_bytes);
            jnum(e, "mean_abs_rel_error", err);
            jnum(e, "oversubscribed", n > in.nproc);
            if (o == 0 && (cal_ranks == 0 || (n <= in.nproc && (cal_ranks > in.nproc || n > cal_ranks)))) {
                cal_ranks = n;
                cal_lat = lat;
                cal_bw = bw;
            }
        }
    if (isfinite(cal_bw)) {
        cal.intra_busbw_gbs = cal_bw;
        cal.intra_latency_us = cal_lat > 0 ? cal_lat : 0;
    }
    sc_workload wg1 = workload(g1);
    const double hbm_gen = sc_solve_hbm(model_dir, &arch, &wg1, &cal, num(g1, "compute_s"));
    cal.hbm_gbps = isfinite(hbm_gen) ? hbm_gen : hbm_opt;

    cJSON *jc = jobj(root, "calibration");
    jnum(jc, "gpu_tflops", cal.gpu_tflops);
    jnum(jc, "mfu", cal.mfu);
    jnum(jc, "hbm_gbps", cal.hbm_gbps);
    jnum(jc, "intra_node_busbw_gbs", cal.intra_busbw_gbs);
    jnum(jc, "intra_node_latency_us", cal.intra_latency_us);
    jnum(jc, "collective_fit_ranks", cal_ranks);
    jnum(jc, "train_flops_per_step_1rank", unit.compute * 1e12);
    jnum(jc, "train_compute_s_1rank", compute1);
    jnum(jc, "hbm_gbps_from_decode", hbm_gen);
    jnum(jc, "hbm_gbps_from_adamw", hbm_opt);
    jnum(jc, "gradient_bytes", grad_bytes);

    /* ---- the calibrated config ---- */
    char yaml[4096];
    snprintf(yaml, sizeof yaml,
             "# srlm plan's cluster model calibrated on this machine by benchmarks/scaling/run.sh:\n"
             "#   %s\n"
             "# One \"GPU\" here = one MPI rank with 1 thread on this CPU. Effective numbers, not specs:\n"
             "# benchmarks/scaling/README.md says how each was derived. Use: srlm plan THIS.yaml model.path=... \n"
             "cluster:\n"
             "  gpu_tflops: %.6g            # measured FLOP rate of one rank's forward + backward (x mfu 1)\n"
             "  mfu: 1.0\n"
             "  hbm_gbps: %.6g              # fitted: the planner's decode time = the measured one (1 rank)\n"
             "  intra_node_busbw_gbs: %.6g  # all-reduce bus bandwidth at the gradient size (%.0f B), %d ranks\n"
             "  intra_node_latency_us: %.6g # all-reduce of <= 1 KiB, median, %d ranks\n"
             "  inter_node_busbw_gbs: %.6g  # not measured (one node): the default\n"
             "  nics_per_node: %d\n"
             "  inter_node_latency_us: %.6g # not measured (one node): the default\n",
             in.label, cal.gpu_tflops, cal.hbm_gbps, cal.intra_busbw_gbs, grad_bytes, cal_ranks,
             cal.intra_latency_us, cal_ranks, cal.inter_busbw_gbs, cal.nics_per_node, cal.inter_latency_us);
    char yname[300];
    snprintf(yname, sizeof yname, "calibrated-%s.yaml", in.host[0] ? in.host : "host");
    if ((st = write_text(dir, yname, yaml)) != SRLM_OK) goto fail;

    /* ---- measured vs modelled, 1 / 2 / 4 ranks ---- */
    sbuf md = {0};
    char a[32], b[32], c[32], d[32], e[32], f[32], g[32], h[32];
    sb(&md, "# Scaling benchmarks: results\n\nMachine: **%s**. Made by `bash benchmarks/scaling/run.sh`; "
            "method and limits in benchmarks/scaling/README.md.\n\n", in.label);
    sb(&md, "%s; %s; BLAS %s; `%s`; 1 thread per rank; %d repeat(s); load average %.2f before, %.2f after; "
            "git %s.\n\n", str(mrecs[0], "mpi"), str(mrecs[0], "compiler"), str(mrecs[0], "blas"),
       str(mrecs[0], "mpirun"), (int)num(mrecs[0], "repeats"), num(mrecs[0], "load_before"),
       num(mrecs[0], "load_after"), str(mrecs[0], "git"));
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(mrecs[0], "quick")))
        sb(&md, "**A --quick smoke run: tiny sizes, one repeat; these numbers mean nothing.**\n\n");
    sb(&md, "## Calibration (cluster.* in `%s`)\n\n| key | value | from |\n| --- | --- | --- |\n", yname);
    sb(&md, "| gpu_tflops x mfu | %.4g TFLOP/s | %.4g GFLOP per step (planner) / %.3f s measured compute without "
            "AdamW, 1 rank x 1 thread |\n",
       cal.gpu_tflops, unit.compute * 1e3, compute1);
    sb(&md, "| hbm_gbps | %.4g GB/s | fitted to the 1-rank generation phase (decode); AdamW alone would give %.4g |\n",
       cal.hbm_gbps, hbm_opt);
    sb(&md, "| intra_node_busbw_gbs | %.4g GB/s | all-reduce of %.0f B (the gradient), %d ranks |\n",
       cal.intra_busbw_gbs, grad_bytes, cal_ranks);
    sb(&md, "| intra_node_latency_us | %.4g us | all-reduce <= 1 KiB, median, %d ranks |\n\n", cal.intra_latency_us,
       cal_ranks);
    sb(&md, "Collectives (alpha-beta fit per operation; error = mean |model - measured| / measured over all sizes):\n\n"
            "| op | ranks | latency | bus bandwidth | fit error |\n| --- | --- | --- | --- | --- |\n");
    for (int i = 0; i < cJSON_GetArraySize(jcomm); i++) {
        const cJSON *x = cJSON_GetArrayItem(jcomm, i);
        sb(&md, "| %s | %d%s | %.3g us | %.3g GB/s | %.0f%% |\n", str(x, "op"), (int)num(x, "ranks"),
           num(x, "ranks") > in.nproc ? " (oversubscribed)" : "", num(x, "latency_us"), num(x, "busbw_gbs"),
           100 * num(x, "mean_abs_rel_error"));
    }

    static const char *MODES[2] = {"strong", "weak"};
    cJSON *jrows = cJSON_AddArrayToObject(root, "runs");
    series3 tr[2], gn[2];
    for (int k = 0; k < 2; k++) {
        sb(&md, "\n## Training step, %s scaling (%s, dp = ranks, 1 thread per rank)\n\n"
                "| ranks | batch | step | compute (fwd+bwd+other) | AdamW | grad sync (RS+AG) | wait | model: step "
                "(compute / dp / optimizer) | model / measured | model, cores shared | ratio |\n"
                "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
           MODES[k], w1.dpo ? "DPO" : "SFT");
        for (int i = 0; i < MAX_RANKS; i++) {
            tr[k].meas[i] = tr[k].model[i] = tr[k].shared[i] = NAN;
            const cJSON *r = find(&in, "train", MODES[k], RANKS[i], 1);
            if (!r) continue;
            sc_workload w = workload(r);
            modelled m, ms;
            sc_cluster sh = cal;
            double share = core_share(&in, &w);
            sh.gpu_tflops *= share;
            sh.hbm_gbps *= share;
            if ((st = model_run(model_dir, &arch, &w, &cal, &m)) != SRLM_OK ||
                (st = model_run(model_dir, &arch, &w, &sh, &ms)) != SRLM_OK)
                goto fail;
            double step = num(r, "step_s"), comp = num(r, "compute_s") - num(r, "adamw_s");
            double sync = num(r, "reduce_scatter_s") + num(r, "allgather_s");
            tr[k].meas[i] = step;
            tr[k].model[i] = m.step;
            tr[k].shared[i] = ms.step;
            char mm[128];
            snprintf(mm, sizeof mm, "%s (%s / %s / %s)", fmt_s(a, m.step), fmt_s(b, m.compute), fmt_s(c, m.dp),
                     fmt_s(d, m.optimizer));
            sb(&md, "| %d%s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", RANKS[i],
               share < 1 ? " (oversubscribed)" : "", w.batch, fmt_s(e, step), fmt_s(f, comp),
               fmt_s(g, num(r, "adamw_s")), fmt_s(h, sync), fmt_s(a, num(r, "wait_s")), mm, fmt_x(b, m.step / step),
               fmt_s(c, ms.step), fmt_x(d, ms.step / step));
            cJSON *o = jobj(jrows, NULL);
            cJSON_AddStringToObject(o, "bench", "train");
            cJSON_AddStringToObject(o, "mode", MODES[k]);
            jnum(o, "ranks", RANKS[i]);
            jnum(o, "threads", 1);
            jnum(o, "repeats", repeats(&in, "train", MODES[k], RANKS[i], 1));
            jnum(o, "measured_step_s", step);
            jnum(o, "measured_compute_s", comp);
            jnum(o, "measured_adamw_s", num(r, "adamw_s"));
            jnum(o, "measured_grad_sync_s", sync);
            jnum(o, "measured_wait_s", num(r, "wait_s"));
            jnum(o, "model_step_s", m.step);
            jnum(o, "model_compute_s", m.compute);
            jnum(o, "model_dp_s", m.dp);
            jnum(o, "model_optimizer_s", m.optimizer);
            jnum(o, "model_shared_step_s", ms.step);
            jnum(o, "core_share", share);
        }
        sb(&md, "\n## Generation phase, %s scaling (work queue, one group per rank, 1 thread per rank)\n\n"
                "| ranks | prompts x samples | phase | compute (max rank) | part writes | idle | tokens/s | model | "
                "model / measured | model, cores shared | ratio |\n"
                "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n", MODES[k]);
        for (int i = 0; i < MAX_RANKS; i++) {
            gn[k].meas[i] = gn[k].model[i] = gn[k].shared[i] = NAN;
            const cJSON *r = find(&in, "gen", MODES[k], RANKS[i], 1);
            if (!r) continue;
            sc_workload w = workload(r);
            modelled m, ms;
            sc_cluster sh = cal;
            double share = core_share(&in, &w);
            sh.gpu_tflops *= share;
            sh.hbm_gbps *= share;
            if ((st = model_run(model_dir, &arch, &w, &cal, &m)) != SRLM_OK ||
                (st = model_run(model_dir, &arch, &w, &sh, &ms)) != SRLM_OK)
                goto fail;
            double ph = num(r, "phase_s");
            gn[k].meas[i] = ph;
            gn[k].model[i] = m.gen;
            gn[k].shared[i] = ms.gen;
            sb(&md, "| %d%s | %d x %d | %s | %s | %s | %s | %.0f | %s | %s | %s | %s |\n", RANKS[i],
               share < 1 ? " (oversubscribed)" : "", w.prompts, w.samples, fmt_s(a, ph), fmt_s(b, num(r, "compute_s")),
               fmt_s(c, num(r, "write_s")), fmt_s(d, num(r, "idle_s")), num(r, "tokens_per_s"), fmt_s(e, m.gen),
               fmt_x(f, m.gen / ph), fmt_s(g, ms.gen), fmt_x(h, ms.gen / ph));
            cJSON *o = jobj(jrows, NULL);
            cJSON_AddStringToObject(o, "bench", "gen");
            cJSON_AddStringToObject(o, "mode", MODES[k]);
            jnum(o, "ranks", RANKS[i]);
            jnum(o, "threads", 1);
            jnum(o, "repeats", repeats(&in, "gen", MODES[k], RANKS[i], 1));
            jnum(o, "measured_phase_s", ph);
            jnum(o, "measured_compute_s", num(r, "compute_s"));
            jnum(o, "measured_write_s", num(r, "write_s"));
            jnum(o, "measured_idle_s", num(r, "idle_s"));
            jnum(o, "model_phase_s", m.gen);
            jnum(o, "model_shared_phase_s", ms.gen);
            jnum(o, "core_share", share);
        }
    }
    /* per rank, strong scaling: compute and collectives (training), compute, writes and idle (generation) */
    sb(&md, "\n## Per rank, strong scaling (medians over steps; generation: whole phase)\n\n"
            "| run | rank | compute | collectives (wait + grad sync + other) / items, part writes, idle |\n"
            "| --- | --- | --- | --- |\n");
    for (int k = 0; k < 2; k++)
        for (int i = 1; i < MAX_RANKS; i++) {
            const cJSON *r = find(&in, k ? "gen" : "train", "strong", RANKS[i], 1);
            const cJSON *pr = r ? cJSON_GetObjectItemCaseSensitive(r, "per_rank") : NULL, *x;
            cJSON_ArrayForEach(x, pr) {
                if (k == 0)
                    sb(&md, "| train, %d ranks | %d | %s | %s (%s + %s + %s) |\n", RANKS[i], (int)num(x, "rank"),
                       fmt_s(a, num(x, "compute_s")), fmt_s(b, num(x, "collective_s")), fmt_s(c, num(x, "wait_s")),
                       fmt_s(d, num(x, "reduce_scatter_s") + num(x, "allgather_s")), fmt_s(e, num(x, "other_coll_s")));
                else
                    sb(&md, "| generation, %d ranks | %d | %s | %.0f items, %s, %s |\n", RANKS[i], (int)num(x, "rank"),
                       fmt_s(a, num(x, "compute_s")), num(x, "items"), fmt_s(b, num(x, "write_s")),
                       fmt_s(c, num(x, "idle_s")));
            }
        }
    /* threads instead of ranks: the 1 rank x nproc threads reference */
    const cJSON *rt = find(&in, "train", "threads", 1, in.nproc), *rg = find(&in, "gen", "threads", 1, in.nproc);
    if (rt || rg) {
        sb(&md, "\n## Threads instead of ranks (1 rank x %d threads, the strong-scaling work)\n\n", in.nproc);
        if (rt)
            sb(&md, "- training step: %s (vs %s with 1 rank x 1 thread, %s with %d ranks x 1 thread)\n",
               fmt_s(a, num(rt, "step_s")), fmt_s(b, tr[0].meas[0]), fmt_s(c, tr[0].meas[in.nproc >= 4 ? 2 : 1]),
               in.nproc >= 4 ? 4 : 2);
        if (rg)
            sb(&md, "- generation phase: %s (vs %s with 1 rank x 1 thread, %s with %d ranks x 1 thread)\n",
               fmt_s(a, num(rg, "phase_s")), fmt_s(b, gn[0].meas[0]), fmt_s(c, gn[0].meas[in.nproc >= 4 ? 2 : 1]),
               in.nproc >= 4 ? 4 : 2);
    }

    /* efficiencies and the first plot */
    cJSON *jeff = jobj(root, "efficiency");
    double E[4][3][MAX_RANKS];
    const char *names[4] = {"train_strong", "train_weak", "gen_strong", "gen_weak"};
    efficiencies(&tr[0], 1, E[0]);
    efficiencies(&tr[1], 0, E[1]);
    efficiencies(&gn[0], 1, E[2]);
    efficiencies(&gn[1], 0, E[3]);
    sb(&md, "\n## Scaling efficiency (strong: T1 / (n Tn); weak: T1 / Tn)\n\n"
            "| ranks | train strong: measured / model / cores shared | train weak | generation strong | "
            "generation weak |\n"
            "| --- | --- | --- | --- | --- |\n");
    for (int i = 0; i < MAX_RANKS; i++) {
        sb(&md, "| %d |", RANKS[i]);
        for (int s = 0; s < 4; s++)
            sb(&md, " %s / %s / %s |", fmt_x(a, E[s][0][i]), fmt_x(b, E[s][1][i]), fmt_x(c, E[s][2][i]));
        sb(&md, "\n");
    }
    for (int s = 0; s < 4; s++) {
        cJSON *o = jobj(jeff, names[s]);
        const char *kinds[3] = {"measured", "model", "model_cores_shared"};
        for (int k = 0; k < 3; k++) cJSON_AddItemToObject(o, kinds[k], cJSON_CreateDoubleArray(E[s][k], MAX_RANKS));
    }
    double xr[MAX_RANKS] = {1, 2, 4};
    const char *plot_names[9] = {"train strong: measured",     "train strong: model",
                                 "train strong: model, cores shared", "train weak: measured",
                                 "train weak: model, cores shared",   "generation strong: measured",
                                 "generation strong: model, cores shared", "generation weak: measured",
                                 "generation weak: model, cores shared"};
    const double *plot_y[9] = {E[0][0], E[0][1], E[0][2], E[1][0], E[1][2], E[2][0], E[2][2], E[3][0], E[3][2]};
    srlm_plot_series ps[9];
    for (int s = 0; s < 9; s++) ps[s] = (srlm_plot_series){plot_names[s], xr, plot_y[s], MAX_RANKS};
    srlm_plot_options po;
    srlm_plot_default_options(&po);
    char title[700], xl[700];
    snprintf(title, sizeof title, "srlm scaling efficiency, measured on %s", in.label);
    snprintf(xl, sizeof xl, "MPI ranks, 1 thread each (%d cores: more ranks = oversubscribed)", in.nproc);
    po.title = title;
    po.x_label = xl;
    po.y_label = "efficiency (strong T1/(n Tn), weak T1/Tn)";
    po.y_fixed = 1;
    po.y_min = 0;
    po.y_max = 1.2;
    po.x_integer = 1;
    po.width = 1080;
    po.height = 540;
    snprintf(path, sizeof path, "%s/scaling-measured.svg", dir);
    if ((st = srlm_svg_plot_write(path, &po, ps, 9)) != SRLM_OK) goto fail;

    /* ---- Llama-2-70B on 8 x N GPUs: the model only ---- */
    srlm_config c70;
    if ((st = srlm_config_load(&c70, cfg70_path, 0, NULL)) != SRLM_OK) goto fail;
    srlm_plan_arch a70;
    srlm_plan_arch_builtin("70b", &a70);
    enum { NN = 5 };
    const int NODES[NN] = {1, 2, 4, 8, 16};
    double T[2][3][NN]; /* strong/weak x sft step, dpo step, iteration */
    int fits[2][NN], dps[NN];
    double peak[NN];
    const int base_batch = c70.train.sft.batch_size, base_prompts = c70.self_instruct.prompts_per_iteration;
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < NN; i++) {
            srlm_config cc = c70; /* shallow: only numbers change */
            if (k == 1) { /* weak: per-replica work of the 1-node layout */
                cc.train.sft.batch_size = base_batch * NODES[i];
                cc.train.dpo.batch_size = c70.train.dpo.batch_size * NODES[i];
                cc.self_instruct.prompts_per_iteration = base_prompts * NODES[i];
            }
            srlm_plan_opts o;
            srlm_plan_opts_defaults(&o);
            o.nodes = NODES[i];
            o.gpus_per_node = 8;
            o.gpu_mem_gib = 80;
            srlm_plan p;
            if ((st = srlm_plan_compute(&cc, &a70, &o, &p)) != SRLM_OK) { srlm_config_free(&c70); goto fail; }
            T[k][0][i] = p.sft.t_step;
            T[k][1][i] = p.dpo.t_step;
            T[k][2][i] = p.t_iteration;
            fits[k][i] = p.fits;
            dps[i] = p.dp;
            peak[i] = (double)p.mem_peak / 1073741824.0;
        }
    srlm_config_free(&c70);
    /* efficiency from the smallest node count that fits */
    double E70[2][3][NN];
    cJSON *j70 = jobj(root, "llama2_70b_model");
    cJSON_AddStringToObject(j70, "config", cfg70_path);
    cJSON_AddStringToObject(j70, "note", "modelled by srlm plan with the config's cluster.* (not this machine's); "
                                         "not a measurement");
    cJSON *j70r = cJSON_AddArrayToObject(j70, "rows");
    for (int k = 0; k < 2; k++)
        for (int q = 0; q < 3; q++) {
            int b0 = -1;
            for (int i = 0; i < NN && b0 < 0; i++)
                if (fits[k][i]) b0 = i;
            for (int i = 0; i < NN; i++) {
                double r = (double)NODES[i] / (b0 >= 0 ? NODES[b0] : 1);
                E70[k][q][i] = b0 < 0 || !fits[k][i] ? NAN
                               : k == 0 ? T[k][q][b0] / (r * T[k][q][i]) : T[k][q][b0] / T[k][q][i];
            }
        }
    sb(&md, "\n## Llama-2-70B on 8 x N GPUs: MODELLED, not measured\n\n`srlm plan %s --nodes N --gpus-per-node 8 "
            "--gpu-mem 80` through its C API, with that config's cluster.* (H100 SXM, NVLink, 8 x 400 Gb/s IB); "
            "strong = the config's work (SFT batch %d, %d prompts per iteration); weak = that per node. "
            "Efficiency relative to the fewest nodes that fit.\n\n"
            "| nodes | GPUs | dp | peak GiB/GPU | fits | SFT step | DPO step | iteration | strong eff. SFT / DPO / "
            "iteration | weak: SFT step | weak: iteration | weak eff. SFT / iteration |\n"
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
            cfg70_path, base_batch, base_prompts);
    for (int i = 0; i < NN; i++) {
        sb(&md, "| %d | %d | %d | %.1f | %s | %s | %s | %.1f min | %s / %s / %s | %s | %.1f min | %s / %s |\n",
           NODES[i], 8 * NODES[i], dps[i], peak[i], fits[0][i] ? "yes" : "no", fmt_s(a, T[0][0][i]),
           fmt_s(b, T[0][1][i]), T[0][2][i] / 60, fmt_x(c, E70[0][0][i]), fmt_x(d, E70[0][1][i]),
           fmt_x(e, E70[0][2][i]), fmt_s(f, T[1][0][i]), T[1][2][i] / 60, fmt_x(g, E70[1][0][i]),
           fmt_x(h, E70[1][2][i]));
        cJSON *o = jobj(j70r, NULL);
        jnum(o, "nodes", NODES[i]);
        jnum(o, "gpus", 8 * NODES[i]);
        jnum(o, "dp", dps[i]);
        jnum(o, "peak_gib", peak[i]);
        cJSON_AddBoolToObject(o, "fits", fits[0][i]);
        jnum(o, "sft_step_s", T[0][0][i]);
        jnum(o, "dpo_step_s", T[0][1][i]);
        jnum(o, "iteration_s", T[0][2][i]);
        jnum(o, "strong_eff_sft", E70[0][0][i]);
        jnum(o, "strong_eff_dpo", E70[0][1][i]);
        jnum(o, "strong_eff_iteration", E70[0][2][i]);
        jnum(o, "weak_sft_step_s", T[1][0][i]);
        jnum(o, "weak_iteration_s", T[1][2][i]);
        jnum(o, "weak_eff_sft", E70[1][0][i]);
        jnum(o, "weak_eff_iteration", E70[1][2][i]);
    }
    /* and from 1 node with memory ignored: the form of the model over the whole range */
    double E1[2][3][NN], x70[NN];
    for (int k = 0; k < 2; k++)
        for (int q = 0; q < 3; q++)
            for (int i = 0; i < NN; i++)
                E1[k][q][i] = k == 0 ? T[k][q][0] / (NODES[i] * T[k][q][i]) : T[k][q][0] / T[k][q][i];
    for (int i = 0; i < NN; i++) x70[i] = NODES[i];
    srlm_plot_series p70[6] = {
        {"SFT step, strong, fitting only", x70, E70[0][0], NN},
        {"iteration, strong, fitting only", x70, E70[0][2], NN},
        {"SFT step, strong, memory ignored", x70, E1[0][0], NN},
        {"iteration, strong, memory ignored", x70, E1[0][2], NN},
        {"SFT step, weak, memory ignored", x70, E1[1][0], NN},
        {"iteration, weak, memory ignored", x70, E1[1][2], NN},
    };
    for (int i = 0; i < NN; i++) {
        cJSON *o = cJSON_GetArrayItem(j70r, i);
        jnum(o, "strong_eff_sft_vs_1node_memory_ignored", E1[0][0][i]);
        jnum(o, "strong_eff_iteration_vs_1node_memory_ignored", E1[0][2][i]);
        jnum(o, "weak_eff_sft_vs_1node_memory_ignored", E1[1][0][i]);
        jnum(o, "weak_eff_iteration_vs_1node_memory_ignored", E1[1][2][i]);
    }
    snprintf(title, sizeof title, "Llama-2-70B (tp 8) on N nodes x 8 H100: MODELLED by srlm plan, not measured");
    snprintf(xl, sizeof xl, "nodes of 8 GPUs (cluster.* of configs/llama2-70b.yaml; computed %s on host %s)", in.date,
             in.host);
    po.title = title;
    po.x_label = xl;
    po.y_label = "modelled efficiency (vs fewest nodes that fit / vs 1 node)";
    po.x_integer = 1;
    snprintf(path, sizeof path, "%s/scaling-70b.svg", dir);
    if ((st = srlm_svg_plot_write(path, &po, p70, 6)) != SRLM_OK) goto fail;

    /* ---- the files ---- */
    char *json = cJSON_Print(root);
    if ((st = write_text(dir, "scaling.json", json ? json : "{}")) != SRLM_OK) goto fail;
    free(json);
    cJSON_Delete(root);
    if ((st = write_text(dir, "scaling.md", md.s ? md.s : "")) != SRLM_OK) goto fail;
    fputs(md.s ? md.s : "", stdout);
    free(md.s);
    srlm_records_free(in.recs, in.n);
    srlm_records_free(mrecs, mn);
    return 0;
fail:
    fprintf(stderr, "scaling_report: %s\n", srlm_last_error());
    return st == SRLM_BAD_INPUT ? 2 : 1;
}
