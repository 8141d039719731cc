/* srlm sft / srlm dpo: one training phase from a config. Results go to
 * RUN_OUT_DIR/RUN_NAME/{sft,dpo}/: config.yaml (resolved), metrics.jsonl,
 * train/step-N (trainer checkpoints), model/ (the trained model, HF format).
 * Rerunning the same command resumes from the newest checkpoint. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/flags.h"
#include "core/log.h"
#include "core/watchdog.h"
#include "dist/topology.h"
#include "io/config.h"
#include "io/fsutil.h"
#include "train/trainer.h"

static void on_stop_signal(int sig) {
    (void)sig;
    srlm_train_request_stop();
}

static srlm_status write_resolved_config(const srlm_config *c, const char *dir) {
    char path[1200];
    snprintf(path, sizeof path, "%s/config.yaml", dir);
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    if (!mem) return SRLM_ERR(SRLM_FAILED, "out of memory");
    srlm_status st = srlm_config_print(c, mem);
    fclose(mem);
    if (st == SRLM_OK) st = srlm_write_file_atomic(path, text, len);
    free(text);
    return st;
}

static srlm_status run_phase(int argc, char **argv, srlm_train_kind kind) {
    const char *name = kind == SRLM_TRAIN_SFT ? "sft" : "dpo";
    long stop_after = 0;
    int quiet = 0;
    const srlm_flag flags[] = {
        {"stop-after", FLAG_INT, &stop_after, "N", "stop after N optimizer steps (checkpointed; exit 75; rerun to resume)", 0},
        {"quiet", FLAG_BOOL, &quiet, NULL, "no progress lines", 0},
    };
    const srlm_command_spec spec = {name, "CONFIG [key.sub=value ...]",
        kind == SRLM_TRAIN_SFT
            ? "Supervised fine-tuning on train.sft.data: JSONL of {prompt, response} (or prompt_ids/response_ids);\n"
              "the loss covers response tokens only. SIGTERM or SIGUSR1 stops at the next step with a checkpoint."
            : "DPO on train.dpo.data: JSONL of {prompt, chosen, rejected} (or *_ids), with optional\n"
              "ref_logp_chosen/ref_logp_rejected; missing reference log-probs are computed once from the\n"
              "starting model. SIGTERM or SIGUSR1 stops at the next step with a checkpoint.",
        flags, SRLM_COUNT(flags), -1};
    srlm_parsed_args pa;
    SRLM_CHECK(srlm_parse_flags(&spec, argc, argv, &pa));
    if (pa.help_shown) { srlm_parsed_args_free(&pa); return SRLM_OK; }
    if (pa.n_positional < 1) {
        srlm_parsed_args_free(&pa);
        return SRLM_ERR(SRLM_BAD_INPUT, "srlm %s needs a CONFIG file (see srlm %s --help)", name, name);
    }
    if (stop_after < 0) {
        srlm_parsed_args_free(&pa);
        return SRLM_ERR(SRLM_BAD_INPUT, "srlm %s: --stop-after expects a number of steps >= 0 (0 = run to the end), "
                        "found %ld", name, stop_after);
    }
    srlm_config cfg;
    srlm_topology topo;
    int have_topo = 0;
    srlm_status st = srlm_config_from_args(&cfg, pa.n_positional, pa.positional);
    srlm_parsed_args_free(&pa);
    SRLM_CHECK(st);
    const srlm_train_config *tc = kind == SRLM_TRAIN_SFT ? &cfg.train.sft : &cfg.train.dpo;
    char out[1100];
    snprintf(out, sizeof out, "%s/%s/%s", cfg.run.out_dir, cfg.run.name, name);
    if (!tc->data || !*tc->data) {
        st = SRLM_ERR(SRLM_BAD_INPUT, "train.%s.data is empty: name the JSONL training data in the config "
                      "or as train.%s.data=FILE", name, name);
        goto done;
    }
    /* under mpirun every rank runs this; alone, a world of one */
    SRLM_CHECK_GOTO(srlm_dist_init(NULL, NULL), st, done);
    SRLM_CHECK_GOTO(srlm_topology_new(&topo, cfg.parallel.tp, cfg.parallel.dp), st, done);
    have_topo = 1;
    if (topo.world_size > 1) srlm_log_set_rank(topo.world_rank);
    if (topo.world_rank == 0) {
        SRLM_CHECK_GOTO(srlm_mkdir_p(out), st, done);
        SRLM_CHECK_GOTO(write_resolved_config(&cfg, out), st, done);
    }
    SRLM_CHECK_GOTO(srlm_watchdog_start(cfg.run.watchdog_s, topo.world_size > 1 ? topo.world_rank : -1), st, done);
    signal(SIGTERM, on_stop_signal);
    signal(SIGUSR1, on_stop_signal);
    srlm_train_job job = {kind, tc->data, out, stop_after, quiet, &topo};
    st = srlm_train(&cfg, &job);
    signal(SIGTERM, SIG_DFL);
    signal(SIGUSR1, SIG_DFL);
    srlm_watchdog_stop();
done:
    if (have_topo) srlm_topology_free(&topo);
    srlm_config_free(&cfg);
    return st;
}

srlm_status cmd_sft(int argc, char **argv) { return run_phase(argc, argv, SRLM_TRAIN_SFT); }
srlm_status cmd_dpo(int argc, char **argv) { return run_phase(argc, argv, SRLM_TRAIN_DPO); }
