/* srlm run: the self-rewarding loop from a config (pipeline/loop.h). Under
 * mpirun every rank runs this command; rank 0 coordinates. Rerunning the same
 * command resumes the run directory RUN_OUT_DIR/RUN_NAME. */
#include <signal.h>

#include "cli/commands.h"
#include "cli/flags.h"
#include "core/log.h"
#include "core/watchdog.h"
#include "dist/topology.h"
#include "io/config.h"
#include "pipeline/loop.h"

static void on_stop_signal(int sig) {
    (void)sig;
    srlm_loop_request_stop();
}

srlm_status cmd_run(int argc, char **argv) {
    int allow_change = 0, quiet = 0;
    const srlm_flag flags[] = {
        {"allow-config-change", FLAG_BOOL, &allow_change, NULL,
         "continue an existing run whose config changed (keys that change results)", 0},
        {"quiet", FLAG_BOOL, &quiet, NULL, "no progress lines", 0},
    };
    const srlm_command_spec spec = {"run", "CONFIG [key.sub=value ...]",
        "The self-rewarding loop: M0 + seed data -> M1 (SFT on IFT + EFT) -> M2, M3, ... (self-instruct,\n"
        "N candidates, self-judging, best-vs-worst pairs, DPO), with evaluation per iteration. Every\n"
        "artifact goes to RUN_OUT_DIR/RUN_NAME; rerun the same command to resume after a failure.\n"
        "SIGUSR1 or SIGTERM stops at the next work item or training step (exit 75).",
        flags, SRLM_COUNT(flags), -1};
    srlm_parsed_args pa;
    SRLM_CHECK(srlm_parse_flags(&spec, argc, argv, &pa));
    if (pa.help_shown) { srlm_parsed_args_free(&pa); return SRLM_OK; }
    if (pa.n_positional < 1) {
        srlm_parsed_args_free(&pa);
        return SRLM_ERR(SRLM_BAD_INPUT, "srlm run needs a CONFIG file (see srlm run --help)");
    }
    srlm_config cfg;
    srlm_status st = srlm_config_from_args(&cfg, pa.n_positional, pa.positional);
    srlm_parsed_args_free(&pa);
    SRLM_CHECK(st);
    srlm_topology topo;
    int have_topo = 0;
    SRLM_CHECK_GOTO(srlm_dist_init(NULL, NULL), st, done);
    SRLM_CHECK_GOTO(srlm_topology_new(&topo, cfg.parallel.tp, cfg.parallel.dp), st, done);
    have_topo = 1;
    if (topo.world_size > 1) srlm_log_set_rank(topo.world_rank);
    SRLM_CHECK_GOTO(srlm_watchdog_start(cfg.run.watchdog_s, topo.world_size > 1 ? topo.world_rank : -1), st, done);
    signal(SIGTERM, on_stop_signal);
    signal(SIGUSR1, on_stop_signal);
    srlm_loop_options o = {&topo, allow_change, quiet};
    st = srlm_loop_run(&cfg, &o);
    signal(SIGTERM, SIG_DFL);
    signal(SIGUSR1, SIG_DFL);
    srlm_watchdog_stop();
done:
    if (have_topo) srlm_topology_free(&topo);
    srlm_config_free(&cfg);
    return st;
}
