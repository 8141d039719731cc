/* Token sampler: temperature, top-k, top-p and inverse-CDF sampling without a full
 * sort of the vocabulary.
 *
 * Candidates are ordered by a strict total order, "before" = larger logit, ties by
 * lower id; that is the fixed order of the contract (descending probability, ties by
 * ascending id), since exp is monotone. Every step only needs a prefix of that order,
 * found by quickselect-style partitioning:
 *   top-k   the first k candidates (select by count);
 *   top-p   the shortest prefix whose mass reaches top_p (select by mass);
 *   draw    the first candidate whose inclusive prefix mass exceeds u (select by mass).
 * Cost per token for V logits, n = finite candidates, k = kept by top-k (n if off):
 *   O(V) scan + O(n) expected for top-k + k exp() (the main cost) + O(k) expected for
 *   top-p and the draw; a select that makes no progress falls back to qsort after
 *   O(log) rounds (introselect), so the worst case is O(n log n). No allocation. Prefix masses are summed in partition order, so they match
 *   the fixed-order sums up to double rounding (the result is still a pure function of
 *   the row, since the pivots are chosen deterministically). */
#include "generate/sampler.h"

#include <math.h>
#include <stdlib.h>

#include "core/rng.h"

typedef struct {
    double w;      /* unnormalised probability exp((logit - max) / T) */
    float  logit;
    int    id;
} cand;

struct srlm_sampler {
    int   vocab;
    cand *c;
};

srlm_status srlm_sampler_new(srlm_sampler **s, int vocab) {
    *s = NULL;
    if (vocab <= 0) return SRLM_ERR(SRLM_BAD_INPUT, "sampler: vocabulary size %d must be positive", vocab);
    srlm_sampler *p = calloc(1, sizeof *p);
    if (p) p->c = malloc((size_t)vocab * sizeof *p->c);
    if (!p || !p->c) {
        free(p);
        return SRLM_ERR(SRLM_FAILED, "sampler: out of memory for %d candidates", vocab);
    }
    p->vocab = vocab;
    *s = p;
    return SRLM_OK;
}

void srlm_sampler_free(srlm_sampler *s) {
    if (!s) return;
    free(s->c);
    free(s);
}

srlm_status srlm_sampling_validate(const srlm_sampling *cfg) {
    if (!cfg) return SRLM_ERR(SRLM_BAD_INPUT, "sampling: no settings given");
    if (!(cfg->temperature >= 0.0f) || !isfinite(cfg->temperature))
        return SRLM_ERR(SRLM_BAD_INPUT, "sampling: temperature %g must be finite and >= 0",
                        (double)cfg->temperature);
    if (!(cfg->top_p > 0.0f && cfg->top_p <= 1.0f))
        return SRLM_ERR(SRLM_BAD_INPUT, "sampling: top_p %g must be in (0, 1]", (double)cfg->top_p);
    if (cfg->top_k < 0) return SRLM_ERR(SRLM_BAD_INPUT, "sampling: top_k %d must be >= 0 (0 = off)", cfg->top_k);
    return SRLM_OK;
}

float srlm_sample_uniform(uint64_t seed, uint64_t sample, uint64_t position) {
    /* The constant label keeps these draws apart from other streams keyed on the same seed. */
    uint64_t key = srlm_rng_key(srlm_rng_key(seed, 0x73616d706c657273ull /* "samplers" */), sample);
    return srlm_rng_uniform(key, position);
}

static inline int before(const cand *a, const cand *b) {
    return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

static inline void swap(cand *a, cand *b) {
    cand t = *a;
    *a = *b;
    *b = t;
}

static int cmp_cand(const void *pa, const void *pb) {
    const cand *a = pa, *b = pb;
    return before(a, b) ? -1 : before(b, a) ? 1 : 0;
}

/* Partition c[lo, hi) (hi - lo >= 2) around a median-of-three pivot: afterwards c[p] is
 * the pivot, c[lo, p) come before it and c(p, hi) after. *mass gets the weight of
 * c[lo, p) (pivot excluded). Returns p. */
static int partition(cand *c, int lo, int hi, double *mass) {
    int mid = lo + (hi - lo) / 2, last = hi - 1;
    /* Median of first, middle, last, moved to the end. */
    if (before(&c[mid], &c[lo])) swap(&c[mid], &c[lo]);
    if (before(&c[last], &c[lo])) swap(&c[last], &c[lo]);
    if (before(&c[mid], &c[last])) swap(&c[mid], &c[last]);
    cand pivot = c[last];
    double m = 0.0;
    int p = lo;
    for (int i = lo; i < last; i++) {
        if (before(&c[i], &pivot)) {
            m += c[i].w;
            swap(&c[i], &c[p]);
            p++;
        }
    }
    swap(&c[p], &c[last]);
    *mass = m;
    return p;
}

/* Past this many partition rounds, sort what is left: bounds the worst case. */
static int round_limit(int n) {
    int r = 16;
    while (n > 1) { n >>= 1; r += 2; }
    return r;
}

/* Rearrange c[0, n) so that c[0, k) are the first k candidates in the order (k < n). */
static void select_count(cand *c, int n, int k) {
    int lo = 0, hi = n, rounds = round_limit(n);
    while (hi - lo > 1) {
        if (--rounds < 0) {
            qsort(c + lo, (size_t)(hi - lo), sizeof *c, cmp_cand);
            return;
        }
        double unused;
        int p = partition(c, lo, hi, &unused);
        if (p == k || p + 1 == k) return;  /* c[0, p] or c[0, p) is exactly the first k */
        if (p > k) hi = p;
        else lo = p + 1;
    }
}

/* Find the first position m of the order whose inclusive prefix mass crosses `target`
 * (>= target when `reach`, else > target), rearranging c[0, n) so that c[0, m) are the
 * candidates before it (in some order) and c[m] is it. Returns m; n - 1 when rounding
 * leaves the total just short of target. */
static int select_mass(cand *c, int n, double target, int reach) {
    /* Invariant: c[0, lo) precede everything in c[lo, hi), have mass acc and do not cross;
     * the answer is in c[lo, hi), or is c[hi - 1] when nothing there crosses. */
    int lo = 0, hi = n, rounds = round_limit(n);
    double acc = 0.0;
    while (hi - lo > 1) {
        if (--rounds < 0) {
            qsort(c + lo, (size_t)(hi - lo), sizeof *c, cmp_cand);
            for (int i = lo; i < hi; i++) {
                acc += c[i].w;
                if (reach ? acc >= target : acc > target) return i;
            }
            return hi - 1;
        }
        double left;
        int p = partition(c, lo, hi, &left);
        double with_p = acc + left + c[p].w;
        if (reach ? acc + left >= target : acc + left > target) {
            hi = p;  /* the answer is in c[lo, p) */
        } else if (reach ? with_p >= target : with_p > target) {
            return p;
        } else {
            acc = with_p;
            lo = p + 1;
        }
    }
    /* Either one candidate is left (it is the answer, or rounding left the total short),
     * or the range emptied because the last pivot was accepted without crossing: that
     * pivot, c[hi - 1], follows all of c[0, hi - 1). */
    return hi - 1;
}

/* Validate and reduce the row to the kept set c[0, *n) (unordered) with total weight
 * *z; under greedy *n = 1 and c[0] is the argmax. */
static srlm_status prepare(srlm_sampler *s, const float *logits, int vocab, const srlm_sampling *cfg,
                           int *n_out, double *z_out) {
    if (!s || !logits) return SRLM_ERR(SRLM_BAD_INPUT, "sample: no sampler or logits given");
    SRLM_CHECK(srlm_sampling_validate(cfg));
    if (vocab <= 0 || vocab > s->vocab)
        return SRLM_ERR(SRLM_BAD_INPUT, "sample: row of %d logits, sampler made for 1..%d", vocab, s->vocab);

    /* One pass: find the first argmax, count the finite logits, reject NaN / +inf
     * (they mean a broken forward pass, not a distribution). Greedy needs no more. */
    int best = -1, n = 0;
    float mx = -INFINITY;
    for (int i = 0; i < vocab; i++) {
        float x = logits[i];
        if (x == -INFINITY) continue;
        if (!isfinite(x)) return SRLM_ERR(SRLM_BAD_INPUT, "sample: logit %d is %g", i, (double)x);
        n++;
        if (x > mx || best < 0) { mx = x; best = i; }
    }
    if (n == 0) return SRLM_ERR(SRLM_BAD_INPUT, "sample: no finite logit in a row of %d", vocab);

    cand *c = s->c;
    if (cfg->temperature == 0.0f) {
        c[0].logit = mx;
        c[0].id = best;
        c[0].w = 1.0;
        *n_out = 1;
        *z_out = 1.0;
        return SRLM_OK;
    }
    n = 0;
    for (int i = 0; i < vocab; i++) {
        if (logits[i] == -INFINITY) continue;
        c[n].logit = logits[i];
        c[n].id = i;
        n++;
    }

    if (cfg->top_k > 0 && cfg->top_k < n) {
        select_count(c, n, cfg->top_k);
        n = cfg->top_k;
    }

    /* Scaling in double keeps distinct logits distinct (float division could merge
     * neighbours); the max has weight 1, so nothing overflows. */
    double inv_t = 1.0 / (double)cfg->temperature, max = mx, z = 0.0;
    for (int i = 0; i < n; i++) {
        c[i].w = exp(((double)c[i].logit - max) * inv_t);
        z += c[i].w;
    }

    if (cfg->top_p < 1.0f) {
        /* Kept: the tokens whose preceding mass is < top_p, i.e. up to and including the
         * first one at which the inclusive prefix mass reaches top_p. */
        n = select_mass(c, n, (double)cfg->top_p * z, 1) + 1;
        z = 0.0;
        for (int i = 0; i < n; i++) z += c[i].w;
    }
    *n_out = n;
    *z_out = z;
    return SRLM_OK;
}

srlm_status srlm_sample(srlm_sampler *s, const float *logits, int vocab, const srlm_sampling *cfg, float u,
                        int *token, double *prob) {
    int n = 0;
    double z = 1.0;
    SRLM_CHECK(prepare(s, logits, vocab, cfg, &n, &z));
    if (cfg->temperature == 0.0f) {
        *token = s->c[0].id;
        if (prob) *prob = 1.0;
        return SRLM_OK;
    }
    if (!(u >= 0.0f && u < 1.0f)) return SRLM_ERR(SRLM_BAD_INPUT, "sample: draw %g is not in [0, 1)", (double)u);
    /* Inverse CDF: the first kept token (fixed order) whose cumulative mass exceeds u. */
    int r = select_mass(s->c, n, (double)u * z, 0);
    *token = s->c[r].id;
    if (prob) *prob = s->c[r].w / z;
    return SRLM_OK;
}

srlm_status srlm_sample_distribution(srlm_sampler *s, const float *logits, int vocab,
                                     const srlm_sampling *cfg, int *ids, double *probs, int *n_out) {
    int n = 0;
    double z = 1.0;
    SRLM_CHECK(prepare(s, logits, vocab, cfg, &n, &z));
    qsort(s->c, (size_t)n, sizeof *s->c, cmp_cand);
    for (int i = 0; i < n; i++) {
        ids[i] = s->c[i].id;
        probs[i] = s->c[i].w / z;
    }
    *n_out = n;
    return SRLM_OK;
}
