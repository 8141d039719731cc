/* Pair selection: a table of judged prompts with the expected pair. */
#include <math.h>
#include <stdio.h>

#include "pipeline/pairs.h"
#include "test.h"

#define C(s, len, nv, sum) {s, len, nv, sum}

int main(void) {
    struct {
        const char *what;
        srlm_judged_candidate c[4];
        int n, lc;
        double gap;
        int want, chosen, rejected;
    } t[] = {
        {"plain", {C(0, 5, 3, 12), C(1, 5, 3, 6), C(2, 5, 3, 9), C(3, 5, 3, 3)}, 4, 0, 0, 1, 0, 3},
        {"all tied: no pair", {C(0, 5, 3, 9), C(1, 7, 3, 9), C(2, 5, 3, 9), C(3, 5, 3, 9)}, 4, 0, 0, 0, -1, -1},
        {"one scored: no pair", {C(0, 5, 3, 9), C(1, 7, 0, 0), C(2, 5, 0, 0), C(3, 5, 0, 0)}, 4, 0, 0, 0, -1, -1},
        {"none scored", {C(0, 5, 0, 0), C(1, 7, 0, 0), C(2, 5, 0, 0), C(3, 5, 0, 0)}, 4, 0, 0, 0, -1, -1},
        {"means, not sums", {C(0, 5, 1, 5), C(1, 5, 3, 12), C(2, 5, 2, 2), C(3, 5, 3, 3)}, 4, 0, 0, 1, 0, 2},
        {"invalid ignored", {C(0, 5, 0, 0), C(1, 5, 2, 8), C(2, 5, 2, 2), C(3, 5, 0, 0)}, 4, 0, 0, 1, 1, 2},
        {"top tie: lowest index", {C(0, 9, 1, 5), C(1, 3, 1, 5), C(2, 5, 1, 1), C(3, 8, 1, 1)}, 4, 0, 0, 1, 0, 2},
        {"top tie: shortest (lc)", {C(0, 9, 1, 5), C(1, 3, 1, 5), C(2, 5, 1, 1), C(3, 8, 1, 1)}, 4, 1, 0, 1, 1, 3},
        {"bottom tie: longest (lc)", {C(0, 4, 1, 4), C(1, 6, 1, 0), C(2, 9, 1, 0), C(3, 2, 1, 0)}, 4, 1, 0, 1, 0, 2},
        {"two candidates", {C(0, 4, 3, 6), C(1, 6, 3, 7)}, 2, 0, 0, 1, 1, 0},
        /* means 13/3 and 10/3: a gap of exactly 1 despite rounding */
        {"gap 1 met", {C(0, 4, 3, 10), C(1, 6, 3, 13), C(2, 6, 3, 11)}, 3, 0, 1, 1, 1, 0},
        {"gap 1 missed", {C(0, 4, 3, 11), C(1, 6, 3, 13), C(2, 6, 3, 12)}, 3, 0, 1, 0, -1, -1},
        {"gap 0.5, two-thirds", {C(0, 4, 3, 11), C(1, 6, 3, 13), C(2, 6, 3, 12)}, 3, 0, 0.5, 1, 1, 0},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        int ch = -1, rj = -1;
        int got = srlm_pick_pair(t[i].c, t[i].n, t[i].lc, t[i].gap, &ch, &rj);
        CHECK_MSG(got == t[i].want && (!got || (ch == t[i].chosen && rj == t[i].rejected)),
                  "%s: got %d (%d, %d), want %d (%d, %d)", t[i].what, got, ch, rj, t[i].want, t[i].chosen,
                  t[i].rejected);
    }
    srlm_judged_candidate none = C(0, 1, 0, 0), some = C(0, 1, 4, 10);
    CHECK(isnan(srlm_candidate_score(&none)));
    CHECK(srlm_candidate_score(&some) == 2.5);
    TEST_DONE();
}
