/* srlm: the command-line entry point. The only place that turns a status into
 * an exit code. */
#include <cblas.h>
#include <errno.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/cpu/blas_kernels.h"
#include "cli/commands.h"
#include "core/fault.h"
#include "core/status.h"
#include "core/watchdog.h"
#include "dist/topology.h"

typedef struct {
    const char *name;
    srlm_status (*run)(int argc, char **argv);
    int         computes; /* runs a model: wants OpenBLAS's best kernels */
    const char *summary;
} command;

static const command COMMANDS[] = {
    {"run",          cmd_run,          1, "the self-rewarding loop: M0 -> M1 -> M2 ... in a resumable run directory"},
    {"demo",         cmd_demo,         1, "run the built-in demo on one CPU (no download)"},
    {"sft",          cmd_sft,          1, "supervised fine-tuning (train.sft.*) with resumable checkpoints"},
    {"dpo",          cmd_dpo,          1, "DPO training (train.dpo.*) with resumable checkpoints"},
    {"generate",     cmd_generate,     1, "generate text from a model"},
    {"score",        cmd_score,        1, "sum of a response's token log-probs under a model"},
    {"inspect",      cmd_inspect,      0, "print a checkpoint's config, tensors and parameter count"},
    {"check-config", cmd_check_config, 0, "validate a YAML config and print it resolved"},
    {"plan",         cmd_plan,         0, "memory per rank, fit and time estimates of a config on a cluster"},
    {"tokenize",     cmd_tokenize,     0, "text on stdin -> token ids on stdout"},
    {"detokenize",   cmd_detokenize,   0, "token ids on stdin -> text on stdout"},
    {"data",         cmd_data,         0, "convert seed data (Open Assistant trees) into IFT, EFT groups and a held-out set"},
};

/* The launcher's rank of this process, read before MPI_Init from the variables
 * mpirun and srun set; 0 when there are none. */
static int launcher_rank(void) {
    static const char *const vars[] = {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v) return atoi(v);
    }
    return 0;
}

/* OpenBLAS picks its kernels when it loads, by CPU model; on a model newer than
 * its release it falls back to SSE3 kernels several times slower than those the
 * CPU can run (blas_kernels.h). The pick can only be changed by starting again
 * with OPENBLAS_CORETYPE set, so a command that computes does that, once: the
 * variable is then set, and a user who sets it chooses for themselves. Before
 * MPI_Init, so under mpirun or srun each rank restarts alone, same pid. */
static void restart_with_better_blas(char **argv) {
    const char *picked, *better = srlm_blas_better_kernels(&picked);
    if (!better || getenv("OPENBLAS_CORETYPE")) return;
    int quiet = launcher_rank() != 0;
    if (setenv("OPENBLAS_CORETYPE", better, 1) != 0) return;
    if (!quiet)
        fprintf(stderr, "srlm: OpenBLAS picked its %s kernels (no AVX2) on this CPU, which has AVX2%s: "
                "running again with OPENBLAS_CORETYPE=%s (set OPENBLAS_CORETYPE to choose yourself)\n",
                picked, strcmp(better, "SkylakeX") ? "" : " and AVX-512", better);
    fflush(NULL);
    execv("/proc/self/exe", argv);
    if (!quiet)
        fprintf(stderr, "srlm: warning: could not run again (%s): going on with OpenBLAS's %s kernels\n",
                strerror(errno), picked);
}

static void usage(FILE *out) {
    fprintf(out, "srlm %s: Self-Rewarding Language Models on Llama-2, in C\n\n", SRLM_VERSION);
    fprintf(out, "usage: srlm COMMAND [args] (srlm COMMAND --help for each)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        fprintf(out, "  %-14s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
}

/* What this binary was built from and with: on a cluster, which MPI and BLAS
 * a job picked up, and whether its build has the GPU backend. */
static void print_version(void) {
    printf("srlm %s (commit %s)\n", SRLM_VERSION, SRLM_GIT_SHA);
#ifdef SRLM_CUDA_BUILD
    printf("backends: cpu, cpu_guarded, cuda (%s", SRLM_CUDA_BUILD);
#ifdef SRLM_HAVE_NCCL
    printf("; NCCL for device collectives)\n");
#else
    printf("; no NCCL: device collectives go through the host)\n");
#endif
#else
    printf("backends: cpu, cpu_guarded (built without CUDA)\n");
#endif
    char mpi[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(mpi, &len); /* may be called before MPI_Init */
    mpi[strcspn(mpi, ",\n")] = '\0';    /* its first part: name and version */
    printf("MPI: %s\n", mpi);
    printf("BLAS: %s\n", openblas_get_config()); /* names the CPU kernels it picked */
    const char *picked, *better = srlm_blas_better_kernels(&picked);
    if (better && !getenv("OPENBLAS_CORETYPE"))
        printf("BLAS kernels: %s has no AVX2 but this CPU has: the commands that compute restart with "
               "OPENBLAS_CORETYPE=%s\n", picked, better);
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? SRLM_BAD_INPUT : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        print_version();
        return 0;
    }
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++) {
        if (strcmp(argv[1], COMMANDS[i].name) != 0) continue;
        int help = argc > 2 && (!strcmp(argv[2], "--help") || !strcmp(argv[2], "-h"));
        if (COMMANDS[i].computes && !help) restart_with_better_blas(argv);
        srlm_status st = COMMANDS[i].run(argc - 1, argv + 1);
        int rank = -1, size = 1;
        if (srlm_dist_initialized()) {
            MPI_Comm_rank(MPI_COMM_WORLD, &rank);
            MPI_Comm_size(MPI_COMM_WORLD, &size);
        }
        if (st != SRLM_OK) {
            /* one fprintf, so one write: the rank prefix written apart could be
             * separated from its line by mpirun's forwarding (seen in CI) */
            char prefix[32] = "";
            if (size > 1) snprintf(prefix, sizeof prefix, "[rank %d] ", rank);
            fprintf(stderr, "%ssrlm %s: %s: %s\n", prefix, argv[1], st == SRLM_INTERRUPTED ? "stopped" : "error",
                    srlm_last_error());
            if (getenv("SRLM_DEBUG")) fprintf(stderr, "  (raised at %s)\n", srlm_last_error_where());
        }
        /* A failure on one rank must not leave the others waiting: abort them all.
         * Done and interrupted runs agree on the status and finalize together. */
        if (st != SRLM_OK && st != SRLM_INTERRUPTED && size > 1) srlm_dist_abort((int)st);
        if (size > 1) {
            /* MPI_Finalize waits for every rank: one frozen now (SIGSTOP, a hung
             * node) would hang the others, so the command's watchdog, if it had
             * one, guards it too. A fault point for the tests stands before it. */
            srlm_watchdog_restart("finishing (every rank meets before MPI_Finalize)");
            if (srlm_fault_point("finalize", 0, rank, "start") != SRLM_OK) {
                fprintf(stderr, "[rank %d] srlm %s: error: %s\n", rank, argv[1], srlm_last_error());
                srlm_dist_abort(SRLM_FAILED);
            }
            /* MPI_Finalize need not wait for every rank (Open MPI may return, the others
             * exit 0 and mpirun then waits forever for the frozen one): an explicit
             * barrier makes every rank wait here, under the watchdog */
            MPI_Barrier(MPI_COMM_WORLD);
        }
        srlm_dist_finalize();
        srlm_watchdog_stop();
        return (int)st;
    }
    fprintf(stderr, "srlm: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return SRLM_BAD_INPUT;
}
