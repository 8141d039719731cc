/* The staging ring's bookkeeping (backend/stage_ring.h), which the CUDA
 * backend's op parameters go through: arrays land at aligned offsets in the
 * slot the ring hands out, slots are taken in turn, and a recent slot is
 * shared only when it holds exactly the same arrays (count, sizes, bytes). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend/stage_ring.h"
#include "test.h"

enum { SLOT = 4096 };
static char g_host[SRLM_STAGE_SLOTS * SLOT];

static void test_layout(void) {
    int a[3] = {1, 2, 3};
    const srlm_stage_in in[4] = {{a, sizeof a}, {NULL, 0}, {a, 300}, {a, 1}};
    size_t off[4];
    const size_t total = srlm_stage_layout(in, 4, off);
    CHECK(off[0] == 0);
    CHECK(off[1] == SRLM_STAGE_ALIGN);     /* an empty array takes no room... */
    CHECK(off[2] == SRLM_STAGE_ALIGN);     /* ...so the next starts where it would have */
    CHECK(off[3] == 3 * SRLM_STAGE_ALIGN); /* 300 bytes round up to two alignments */
    CHECK(total == 4 * SRLM_STAGE_ALIGN);
    const srlm_stage_in none[2] = {{NULL, 0}, {NULL, 0}};
    CHECK(srlm_stage_layout(none, 2, off) == 0);
}

static void test_fill_and_find(void) {
    srlm_stage_ring r;
    srlm_stage_ring_init(&r, g_host, SLOT);
    int pos[4] = {7, 8, 9, 10}, slots[2] = {0, 1}, past[2] = {5, 6};
    const srlm_stage_in p[1] = {{pos, sizeof pos}};
    CHECK(srlm_stage_find(&r, p, 1) == -1); /* an empty ring shares nothing */
    CHECK(srlm_stage_fill(&r, p, 1) == 0);
    CHECK(memcmp(g_host, pos, sizeof pos) == 0);
    CHECK(srlm_stage_find(&r, p, 1) == 0);
    /* a second array set in the next slot, at its offsets */
    const srlm_stage_in sh[3] = {{slots, sizeof slots}, {past, sizeof past}, {NULL, 0}};
    CHECK(srlm_stage_find(&r, sh, 3) == -1);
    CHECK(srlm_stage_fill(&r, sh, 3) == 1);
    CHECK(memcmp(g_host + SLOT, slots, sizeof slots) == 0);
    CHECK(memcmp(g_host + SLOT + SRLM_STAGE_ALIGN, past, sizeof past) == 0);
    CHECK(srlm_stage_find(&r, sh, 3) == 1);
    CHECK(srlm_stage_find(&r, p, 1) == 0);
    /* what differs is not shared: a byte, a size, the count, the split into arrays */
    int pos2[4] = {7, 8, 9, 11};
    const srlm_stage_in p2[1] = {{pos2, sizeof pos2}};
    CHECK(srlm_stage_find(&r, p2, 1) == -1);
    const srlm_stage_in p3[1] = {{pos, 3 * sizeof(int)}};
    CHECK(srlm_stage_find(&r, p3, 1) == -1);
    CHECK(srlm_stage_find(&r, sh, 2) == -1);
    const srlm_stage_in sh2[3] = {{slots, sizeof slots}, {NULL, 0}, {past, sizeof past}};
    CHECK(srlm_stage_find(&r, sh2, 3) == -1);
    /* the source changing after the fill does not change what the slot holds */
    pos[3] = 99;
    CHECK(srlm_stage_find(&r, p, 1) == -1);
    pos[3] = 10;
    CHECK(srlm_stage_find(&r, p, 1) == 0);
    /* arrays of no bytes at all match on count and sizes alone */
    const srlm_stage_in e[2] = {{NULL, 0}, {NULL, 0}};
    CHECK(srlm_stage_fill(&r, e, 2) == 2);
    CHECK(srlm_stage_find(&r, e, 2) == 2);
    CHECK(srlm_stage_find(&r, e, 1) == -1);
    CHECK(srlm_stage_find(&r, p, SRLM_STAGE_MAX_IN + 1) == -1);
    /* too many arrays: refused, the ring unchanged */
    const int next = r.next;
    CHECK(srlm_stage_fill(&r, p, SRLM_STAGE_MAX_IN + 1) == -1);
    CHECK(srlm_stage_fill(&r, p, -1) == -1);
    CHECK(r.next == next);
    /* a slot whose copy to the device failed is forgotten: nothing to share */
    CHECK(srlm_stage_find(&r, p, 1) == 0);
    srlm_stage_forget(&r, 0);
    CHECK(srlm_stage_find(&r, p, 1) == -1);
    CHECK(srlm_stage_find(&r, sh, 3) == 1);
    srlm_stage_forget(&r, SRLM_STAGE_SLOTS); /* out of range: ignored */
}

/* Only the last SRLM_STAGE_WINDOW fills are searched, the most recent first,
 * and slots come round in turn, each keeping what its latest fill put there. */
static void test_window_and_wrap(void) {
    srlm_stage_ring r;
    srlm_stage_ring_init(&r, g_host, SLOT);
    int v[3 * SRLM_STAGE_SLOTS];
    for (int i = 0; i < 3 * SRLM_STAGE_SLOTS; i++) v[i] = 1000 + i;
    for (int i = 0; i < 3 * SRLM_STAGE_SLOTS; i++) {
        const srlm_stage_in in[1] = {{&v[i], sizeof v[i]}};
        const int k = srlm_stage_fill(&r, in, 1);
        CHECK_MSG(k == i % SRLM_STAGE_SLOTS, "fill %d took slot %d", i, k);
    }
    const int last = 3 * SRLM_STAGE_SLOTS - 1;
    for (int back = 0; back < SRLM_STAGE_SLOTS + 2; back++) {
        const srlm_stage_in in[1] = {{&v[last - back], sizeof(int)}};
        const int want = back < SRLM_STAGE_WINDOW ? (last - back) % SRLM_STAGE_SLOTS : -1;
        CHECK_MSG(srlm_stage_find(&r, in, 1) == want, "the value filled %d fills ago: slot %d, expected %d", back,
                  srlm_stage_find(&r, in, 1), want);
    }
    /* the same arrays in two recent slots: the most recent is the one shared */
    int same = 5;
    const srlm_stage_in s[1] = {{&same, sizeof same}};
    const int first = srlm_stage_fill(&r, s, 1);
    const int other = srlm_stage_fill(&r, (const srlm_stage_in[1]){{&v[0], sizeof(int)}}, 1);
    const int second = srlm_stage_fill(&r, s, 1);
    CHECK(first != second && other != second);
    CHECK(srlm_stage_find(&r, s, 1) == second);
    /* a new ring (the backend's, after its slots grew) shares nothing */
    srlm_stage_ring_init(&r, g_host, SLOT);
    CHECK(srlm_stage_find(&r, s, 1) == -1);
    CHECK(r.next == 0);
}

/* A decode step's pattern: per layer, positions twice, a cache shape twice,
 * an attention shape once; after the first layer, nothing is copied again. */
static void test_decode_pattern(void) {
    srlm_stage_ring r;
    srlm_stage_ring_init(&r, g_host, SLOT);
    int pos[1] = {17}, slot[1] = {0}, past[1] = {17}, nnew[1] = {1};
    const srlm_stage_in p[1] = {{pos, sizeof pos}};
    const srlm_stage_in shape[5] = {{slot, sizeof slot}, {past, sizeof past}, {nnew, sizeof nnew}, {NULL, 0}, {NULL, 0}};
    int fills = 0;
    for (int layer = 0; layer < 22; layer++) {
        const srlm_stage_in *sets[5] = {p, p, shape, shape, shape};
        const int ns[5] = {1, 1, 5, 5, 5};
        for (int j = 0; j < 5; j++)
            if (srlm_stage_find(&r, sets[j], ns[j]) < 0) srlm_stage_fill(&r, sets[j], ns[j]), fills++;
    }
    CHECK_MSG(fills == 2, "a 22-layer decode step filled %d slots, expected 2", fills);
    /* the next token's step: the positions moved, so both sets are new once */
    pos[0] = 18, past[0] = 18;
    fills = 0;
    for (int layer = 0; layer < 22; layer++) {
        if (srlm_stage_find(&r, p, 1) < 0) srlm_stage_fill(&r, p, 1), fills++;
        if (srlm_stage_find(&r, shape, 5) < 0) srlm_stage_fill(&r, shape, 5), fills++;
    }
    CHECK(fills == 2);
}

int main(void) {
    test_layout();
    test_fill_and_find();
    test_window_and_wrap();
    test_decode_pattern();
    TEST_DONE();
}
