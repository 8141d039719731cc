/* MPI start-up and the parallel layout: world = dp x tp ranks, tp ranks of one
 * group consecutive (and on one node), as DESIGN.md "Parallel layout" says.
 *
 *   world rank w:  tp_rank = w % tp,  dp_rank = w / tp
 *   tp_comm:  the tp consecutive ranks of this group (one model replica)
 *   dp_comm:  the ranks with this tp_rank, one per group (gradient reduction)
 *   leaders:  tp_rank 0 of every group (work pulling); NULL on other ranks
 *
 * Every communicator is a real MPI one, also when it has one rank; collectives
 * on a 1-rank communicator are no-ops or local copies. */
#ifndef SRLM_TOPOLOGY_H
#define SRLM_TOPOLOGY_H

#include "dist/comm.h"

typedef struct {
    int world_rank, world_size, tp, dp, tp_rank, dp_rank, local_rank, local_size;
    srlm_comm *world, *tp_comm, *dp_comm; /* dp_comm: same tp_rank across groups */
    srlm_comm *leaders;                   /* tp_rank 0 of every group; NULL on other ranks */
} srlm_topology;

/* MPI_Init_thread(MPI_THREAD_FUNNELED) once (only the main thread calls MPI);
 * later calls, or MPI already started by someone else, are fine. Works when not
 * launched by mpirun (a singleton world of 1). argc/argv may be NULL. */
srlm_status srlm_dist_init(int *argc, char ***argv);
int         srlm_dist_initialized(void); /* MPI is up and not finalized */

/* Build the layout over MPI_COMM_WORLD (collective: every rank calls it with the
 * same tp and dp). dp = 0 derives it as world / tp. Bad layouts give
 * SRLM_BAD_INPUT with a message naming parallel.tp / parallel.dp and the world
 * size, identically on every rank. On failure *t is zeroed. */
srlm_status srlm_topology_new(srlm_topology *t, int tp, int dp);
void        srlm_topology_free(srlm_topology *t); /* collective; zeroes *t */

/* MPI_Abort(MPI_COMM_WORLD) when MPI is up and the world has more than one
 * rank (so nobody waits forever); otherwise exit. Flushes stdout and stderr. */
void        srlm_dist_abort(int exit_code);
/* MPI_Finalize if srlm_dist_init started MPI and it is still up. */
void        srlm_dist_finalize(void);

/* Tests only: pretend nodes hold ranks_per_node ranks each (0: ask MPI, the
 * default), placed in blocks (rank / ranks_per_node, mpirun's default) or, with
 * round_robin, rank % (world / ranks_per_node) (like mpirun --map-by node), to
 * exercise the "a tp group must sit on one node" checks on one machine. Set it
 * on every rank before srlm_topology_new. */
void        srlm_topology_set_fake_nodes(int ranks_per_node, int round_robin);

#endif
