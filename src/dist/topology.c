/* MPI start-up / shutdown and the dp x tp layout (see topology.h). */
#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist/comm_mpi.h"
#include "dist/topology.h"

static int g_we_started;     /* srlm_dist_init called MPI_Init_thread */
static int g_fake_node_size, g_fake_round_robin; /* tests only, see topology.h */

void srlm_topology_set_fake_nodes(int ranks_per_node, int round_robin) {
    g_fake_node_size = ranks_per_node > 0 ? ranks_per_node : 0;
    g_fake_round_robin = round_robin;
}

int srlm_dist_initialized(void) {
    int up = 0, down = 0;
    MPI_Initialized(&up);
    MPI_Finalized(&down);
    return up && !down;
}

srlm_status srlm_dist_init(int *argc, char ***argv) {
    srlm_status st = SRLM_OK;
    int         up = 0, down = 0, provided = 0;
    MPI_Initialized(&up);
    MPI_Finalized(&down);
    if (down) return SRLM_ERR(SRLM_FAILED, "starting MPI: it was already finalized and cannot start again");
    if (!up) {
        int rc = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
        if (rc != MPI_SUCCESS)
            return SRLM_ERR(SRLM_FAILED, "starting MPI: MPI_Init_thread failed (code %d); is the MPI launcher "
                                         "(mpirun/srun) set up for this build?", rc);
        g_we_started = 1;
    } else {
        MPI_TRY_GOTO(st, done, MPI_Query_thread, (&provided), "starting MPI: asking the thread level");
    }
    if (provided < MPI_THREAD_FUNNELED)
        return SRLM_ERR(SRLM_FAILED, "starting MPI: it provides thread level %d, srlm needs MPI_THREAD_FUNNELED (%d)",
                        provided, MPI_THREAD_FUNNELED);
    /* Errors as codes, so srlm reports them with context instead of MPI aborting. */
    MPI_TRY_GOTO(st, done, MPI_Comm_set_errhandler, (MPI_COMM_WORLD, MPI_ERRORS_RETURN),
                 "starting MPI: making errors come back as codes");
done:
    return st;
}

void srlm_dist_finalize(void) {
    if (g_we_started && srlm_dist_initialized()) MPI_Finalize();
}

void srlm_dist_abort(int exit_code) {
    fflush(stdout);
    fflush(stderr);
    if (srlm_dist_initialized()) {
        int size = 1;
        MPI_Comm_size(MPI_COMM_WORLD, &size);
        if (size > 1) MPI_Abort(MPI_COMM_WORLD, exit_code);
        /* Alone: finalize so mpirun does not report an improper exit. */
        srlm_dist_finalize();
    }
    exit(exit_code);
}

void srlm_topology_free(srlm_topology *t) {
    if (!t) return;
    srlm_comm_free(t->leaders);
    srlm_comm_free(t->dp_comm);
    srlm_comm_free(t->tp_comm);
    srlm_comm_free(t->world);
    memset(t, 0, sizeof *t);
}

/* Checks that need only the numbers: identical on every rank, no communication. */
static srlm_status check_layout(int world, int tp, int dp) {
    if (tp < 1) return SRLM_ERR(SRLM_BAD_INPUT, "parallel.tp = %d: must be at least 1 (world size %d)", tp, world);
    if (dp < 0)
        return SRLM_ERR(SRLM_BAD_INPUT,
                        "parallel.dp = %d: must be at least 1, or 0 to derive it as world size / parallel.tp "
                        "(world size %d)", dp, world);
    if (tp > world)
        return SRLM_ERR(SRLM_BAD_INPUT, "parallel.tp = %d is larger than the world size %d: launch at least %d ranks",
                        tp, world, tp);
    if (world % tp)
        return SRLM_ERR(SRLM_BAD_INPUT, "world size %d is not divisible by parallel.tp = %d", world, tp);
    if (dp > 0 && (long long)tp * dp != world)
        return SRLM_ERR(SRLM_BAD_INPUT,
                        "parallel.tp = %d x parallel.dp = %d = %lld ranks, but the world size is %d "
                        "(launch %lld ranks, or set parallel.dp = 0 to derive it)", tp, dp, (long long)tp * dp,
                        world, (long long)tp * dp);
    return SRLM_OK;
}

srlm_status srlm_topology_new(srlm_topology *t, int tp, int dp) {
    if (!t) return SRLM_ERR(SRLM_BAD_INPUT, "srlm_topology_new: NULL topology");
    memset(t, 0, sizeof *t);
    if (!srlm_dist_initialized())
        return SRLM_ERR(SRLM_FAILED, "building the parallel layout: MPI is not running (call srlm_dist_init first)");

    srlm_status st = SRLM_OK;
    MPI_Comm    wc = MPI_COMM_NULL, lc = MPI_COMM_NULL;
    int         world = 1, wrank = 0;
    MPI_TRY_GOTO(st, fail, MPI_Comm_size, (MPI_COMM_WORLD, &world), "building the parallel layout: world size");
    MPI_TRY_GOTO(st, fail, MPI_Comm_rank, (MPI_COMM_WORLD, &wrank), "building the parallel layout: world rank");
    SRLM_CHECK_GOTO(check_layout(world, tp, dp), st, fail);
    if (dp == 0) dp = world / tp;

    t->world_rank = wrank;
    t->world_size = world;
    t->tp = tp;
    t->dp = dp;
    t->tp_rank = wrank % tp;
    t->dp_rank = wrank / tp;

    /* Our own copy of the world: its tags and errors are srlm's alone. */
    MPI_TRY_GOTO(st, fail, MPI_Comm_dup, (MPI_COMM_WORLD, &wc), "building the parallel layout: copying the world");
    SRLM_CHECK_GOTO(srlm_comm_from_mpi(wc, 1, &t->world), st, fail);
    wc = MPI_COMM_NULL; /* owned by t->world now */

    /* Ranks sharing this node (memory). */
    MPI_Comm w = srlm_comm_mpi_handle(t->world);
    if (g_fake_node_size) {
        int n_nodes = (world + g_fake_node_size - 1) / g_fake_node_size;
        int fake = g_fake_round_robin ? wrank % n_nodes : wrank / g_fake_node_size;
        MPI_TRY_GOTO(st, fail, MPI_Comm_split, (w, fake, wrank, &lc),
                     "building the parallel layout: grouping ranks by (fake) node");
    }
    else
        MPI_TRY_GOTO(st, fail, MPI_Comm_split_type, (w, MPI_COMM_TYPE_SHARED, wrank, MPI_INFO_NULL, &lc),
                     "building the parallel layout: grouping ranks by node");
    MPI_TRY_GOTO(st, fail, MPI_Comm_rank, (lc, &t->local_rank), "building the parallel layout: node rank");
    MPI_TRY_GOTO(st, fail, MPI_Comm_size, (lc, &t->local_size), "building the parallel layout: node size");

    SRLM_CHECK_GOTO(srlm_comm_split(t->world, t->dp_rank, t->tp_rank, &t->tp_comm), st, fail);

    /* A tp group must sit on one node: name each node by its lowest world rank
     * and compare across the group; then agree world-wide so every rank fails alike. */
    int node = wrank, lo, hi;
    MPI_TRY_GOTO(st, fail, MPI_Allreduce, (MPI_IN_PLACE, &node, 1, MPI_INT, MPI_MIN, lc),
                 "building the parallel layout: naming this node");
    lo = node;
    hi = node;
    SRLM_CHECK_GOTO(srlm_comm_allreduce(t->tp_comm, &lo, 1, SRLM_COMM_I32, SRLM_REDUCE_MIN), st, fail);
    SRLM_CHECK_GOTO(srlm_comm_allreduce(t->tp_comm, &hi, 1, SRLM_COMM_I32, SRLM_REDUCE_MAX), st, fail);
    int agree[3] = {lo == hi, t->local_size, -t->local_size}; /* min: all ok, smallest, largest node */
    SRLM_CHECK_GOTO(srlm_comm_allreduce(t->world, agree, 3, SRLM_COMM_I32, SRLM_REDUCE_MIN), st, fail);
    if (!agree[0]) {
        if (agree[1] < tp)
            st = SRLM_ERR(SRLM_BAD_INPUT,
                          "parallel.tp = %d, but a node holds only %d rank(s) (world size %d): a tp group must "
                          "sit on one node", tp, agree[1], world);
        else
            st = SRLM_ERR(SRLM_BAD_INPUT,
                          "parallel.tp = %d: a tp group spans two nodes (world size %d, %d..%d ranks per node): a tp "
                          "group must sit on one node; place ranks by node, a multiple of parallel.tp on each",
                          tp, world, agree[1], -agree[2]);
        goto fail;
    }

    SRLM_CHECK_GOTO(srlm_comm_split(t->world, t->tp_rank, t->dp_rank, &t->dp_comm), st, fail);
    SRLM_CHECK_GOTO(srlm_comm_split(t->world, t->tp_rank == 0 ? 0 : -1, t->dp_rank, &t->leaders), st, fail);
    MPI_Comm_free(&lc);
    return SRLM_OK;

fail:
    if (lc != MPI_COMM_NULL) MPI_Comm_free(&lc);
    if (wc != MPI_COMM_NULL) MPI_Comm_free(&wc);
    srlm_topology_free(t);
    return st;
}
