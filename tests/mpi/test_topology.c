/* MPI_RANKS: 4 */
/* The dp x tp layout on 4 ranks: group membership of every communicator, and
 * each bad layout failing with SRLM_BAD_INPUT and the same message everywhere. */
#include <string.h>

#include "dist/comm_mpi.h"
#include "dist/topology.h"
#include "test.h"

/* World ranks of a communicator's members, in its rank order. */
static void members(srlm_comm *c, int world_rank, float *out) {
    float me = (float)world_rank;
    CHECK_OK(srlm_comm_allgather_f32(c, &me, out, 1));
}

static void check_layout(int tp, int dp) {
    srlm_topology t;
    CHECK_OK(srlm_topology_new(&t, tp, dp));
    if (!t.world) return;
    int w = t.world_rank, want_dp = dp ? dp : t.world_size / tp;
    float m[16];
    CHECK(t.world_size == 4 && srlm_comm_size(t.world) == 4 && srlm_comm_rank(t.world) == w);
    CHECK(t.tp == tp && t.dp == want_dp);
    CHECK(t.tp_rank == w % tp && t.dp_rank == w / tp);
    CHECK(t.local_rank >= 0 && t.local_rank < t.local_size && t.local_size <= t.world_size);

    /* tp group: consecutive ranks */
    CHECK(srlm_comm_size(t.tp_comm) == tp && srlm_comm_rank(t.tp_comm) == t.tp_rank);
    members(t.tp_comm, w, m);
    for (int k = 0; k < tp; k++)
        CHECK_MSG(m[k] == (float)(t.dp_rank * tp + k), "tp=%d dp=%d: tp member %d is %g", tp, dp, k, m[k]);

    /* dp group: same tp_rank in every group */
    CHECK(srlm_comm_size(t.dp_comm) == want_dp && srlm_comm_rank(t.dp_comm) == t.dp_rank);
    members(t.dp_comm, w, m);
    for (int k = 0; k < want_dp; k++)
        CHECK_MSG(m[k] == (float)(k * tp + t.tp_rank), "tp=%d dp=%d: dp member %d is %g", tp, dp, k, m[k]);

    /* leaders: tp_rank 0 of every group, NULL elsewhere */
    CHECK((t.leaders != NULL) == (t.tp_rank == 0));
    if (t.leaders) {
        CHECK(srlm_comm_size(t.leaders) == want_dp && srlm_comm_rank(t.leaders) == t.dp_rank);
        members(t.leaders, w, m);
        for (int k = 0; k < want_dp; k++) CHECK_MSG(m[k] == (float)(k * tp), "leader %d is %g", k, m[k]);
    }
    CHECK_OK(srlm_comm_barrier(t.world));
    srlm_topology_free(&t);
    CHECK(t.world == NULL && t.tp_comm == NULL);
}

static void check_bad(int tp, int dp, const char *want1, const char *want2) {
    srlm_topology t;
    srlm_status   st = srlm_topology_new(&t, tp, dp);
    CHECK_MSG(st == SRLM_BAD_INPUT, "tp=%d dp=%d gave %d", tp, dp, (int)st);
    const char *msg = srlm_last_error();
    CHECK_MSG(strstr(msg, want1) && strstr(msg, want2), "tp=%d dp=%d: message \"%s\"", tp, dp, msg);
    CHECK(t.world == NULL && t.tp_comm == NULL && t.dp_comm == NULL && t.leaders == NULL);
}

int main(int argc, char **argv) {
    srlm_topology t;
    CHECK(!srlm_dist_initialized());
    CHECK(srlm_topology_new(&t, 1, 0) == SRLM_FAILED);
    CHECK(strstr(srlm_last_error(), "srlm_dist_init") != NULL);
    CHECK_OK(srlm_dist_init(&argc, &argv));
    CHECK_OK(srlm_dist_init(&argc, &argv)); /* twice is fine */
    CHECK(srlm_dist_initialized());
    int size = 0;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size != 4) {
        srlm_dist_finalize();
        TEST_SKIP("needs 4 ranks, got %d", size);
    }

    check_layout(1, 4);
    check_layout(2, 2);
    check_layout(4, 1);
    check_layout(2, 0);
    check_layout(1, 0);

    check_bad(0, 0, "parallel.tp = 0", "world size 4");
    check_bad(2, -1, "parallel.dp = -1", "world size 4");
    check_bad(3, 0, "world size 4 is not divisible by parallel.tp = 3", "");
    check_bad(8, 0, "parallel.tp = 8 is larger than the world size 4", "");
    check_bad(2, 3, "parallel.tp = 2 x parallel.dp = 3 = 6 ranks", "world size is 4");
    check_bad(1, 2, "parallel.dp = 2", "world size is 4");

    /* a tp group must sit on one node (nodes faked: 4 ranks on one machine) */
    srlm_topology_set_fake_nodes(2, 0); /* nodes {0,1} {2,3} */
    check_bad(4, 0, "parallel.tp = 4, but a node holds only 2 rank(s) (world size 4)", "must sit on one node");
    CHECK_OK(srlm_topology_new(&t, 2, 2));
    CHECK(t.local_size == 2 && t.local_rank == t.world_rank % 2);
    srlm_topology_free(&t);
    srlm_topology_set_fake_nodes(3, 0); /* nodes {0,1,2} {3} */
    check_bad(2, 0, "parallel.tp = 2, but a node holds only 1 rank(s) (world size 4)", "must sit on one node");
    srlm_topology_set_fake_nodes(2, 1); /* nodes {0,2} {1,3}: group {0,1} spans both */
    check_bad(2, 0, "parallel.tp = 2: a tp group spans two nodes (world size 4, 2..2 ranks per node)",
              "must sit on one node");
    CHECK_OK(srlm_topology_new(&t, 1, 4)); /* tp = 1 fits anywhere */
    CHECK(t.local_size == 2);
    srlm_topology_free(&t);
    srlm_topology_set_fake_nodes(0, 0);

    /* still usable after the failures */
    check_layout(2, 2);
    srlm_dist_finalize();
    CHECK(!srlm_dist_initialized());
    TEST_DONE();
}
