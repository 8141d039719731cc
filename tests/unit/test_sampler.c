/* Token sampler: greedy, the exact final distribution and its inverse CDF against a
 * straightforward reference written here, chi-square tests of the sampled histogram
 * and of srlm_sample_uniform, transformers' logits warpers (fixture), bad inputs. */
#include <cjson/cJSON.h>
#include <string.h>
#include <time.h>

#include "core/rng.h"
#include "generate/sampler.h"
#include "test.h"

/* chi2.ppf(1 - 1e-6, df): the critical value for a false-failure probability of 1e-6
 * per chi-square test. Computed with mpmath (the venv has no scipy) as the root of
 * gammainc(df/2, x/2, inf, regularized=True) = 1e-6; df 1 and 2 agree with the closed
 * forms 4.891638476^2 and -2 ln 1e-6. */
static const double CHI2_CRIT_1E6[16] = {
    0, 23.92812698, 27.63102112, 30.66484971, 33.37684158, 35.88818688, 38.25833638,
    40.52183123, 42.70091393, 44.81093787, 46.86304685, 48.86564276, 50.82525214,
    52.74706811, 54.63530553, 56.4934425};
static const double CHI2_CRIT_1E6_DF99 = 180.7920153;
/* Two-sided normal quantile for 1e-6: sqrt(2) * erfinv(1 - 1e-6). */
static const double Z_1E6 = 4.891638476;

/* ---- reference: the contract written out plainly, in double ---- */

/* Kept ids in the fixed order (descending logit, ties by ascending id) and their
 * final probabilities; returns the count. *margin (may be NULL) gets how close the
 * top-p cut came to deciding otherwise (min over r of |mass before r - top_p|). */
static int ref_dist(const float *logits, int v, const srlm_sampling *cfg, int *ids, double *probs,
                    double *margin) {
    int n = 0;
    for (int i = 0; i < v; i++) {
        if (logits[i] == -INFINITY) continue;
        int j = n++;
        while (j > 0 && logits[ids[j - 1]] < logits[i]) {  /* stable insertion sort */
            ids[j] = ids[j - 1];
            j--;
        }
        ids[j] = i;
    }
    if (margin) *margin = INFINITY;
    if (cfg->temperature == 0.0f) {
        probs[0] = 1.0;
        return 1;
    }
    if (cfg->top_k > 0 && cfg->top_k < n) n = cfg->top_k;
    double t = cfg->temperature, z = 0.0;
    for (int r = 0; r < n; r++) z += exp(logits[ids[r]] / t - logits[ids[0]] / t);
    for (int r = 0; r < n; r++) probs[r] = exp(logits[ids[r]] / t - logits[ids[0]] / t) / z;
    if (cfg->top_p < 1.0f) {
        double before = 0.0;
        int kept = 0;
        while (kept < n && before < cfg->top_p) {
            if (margin && fabs(before - cfg->top_p) < *margin) *margin = fabs(before - cfg->top_p);
            before += probs[kept++];
        }
        if (margin && kept < n && fabs(before - cfg->top_p) < *margin) *margin = fabs(before - cfg->top_p);
        n = kept;
        z = 0.0;
        for (int r = 0; r < n; r++) z += probs[r];
        for (int r = 0; r < n; r++) probs[r] /= z;
    }
    return n;
}

/* The token inverse-CDF sampling over the reference picks for u; *near gets the
 * distance from u to the closest CDF boundary. */
static int ref_pick(const int *ids, const double *probs, int n, double u, double *near) {
    double c = 0.0;
    int pick = -1;
    *near = INFINITY;
    for (int r = 0; r < n; r++) {
        c += probs[r];
        if (r < n - 1 && fabs(u - c) < *near) *near = fabs(u - c);
        if (pick < 0 && u < c) pick = r;
    }
    return pick < 0 ? ids[n - 1] : ids[pick];
}

static srlm_sampling mk(float t, int k, float p) {
    srlm_sampling c = {t, p, k};
    return c;
}

/* ---- greedy ---- */

static void test_greedy(srlm_sampler *s) {
    int tok = -1;
    double pr = 0;
    srlm_sampling g = mk(0.0f, 0, 1.0f);
    const float a[] = {1.0f, 3.0f, -INFINITY, 3.0f, 2.0f};
    CHECK_OK(srlm_sample(s, a, 5, &g, 0.5f, &tok, &pr));
    CHECK_MSG(tok == 1 && pr == 1.0, "tie -> lowest id: got %d (p %g)", tok, pr);
    const float b[] = {-INFINITY, -1e30f, -INFINITY, -5.0f};
    CHECK_OK(srlm_sample(s, b, 4, &g, 0.0f, &tok, NULL));
    CHECK_MSG(tok == 3, "-inf ignored: got %d", tok);
    const float c[] = {-INFINITY, -INFINITY, -1e30f};
    CHECK_OK(srlm_sample(s, c, 3, &g, 0.0f, &tok, NULL));
    CHECK_MSG(tok == 2, "only finite entry: got %d", tok);
    /* top-k / top-p do not change the argmax. */
    srlm_sampling g2 = mk(0.0f, 2, 0.3f);
    const float d[] = {0.5f, -2.0f, 7.25f, 7.0f, 7.25f};
    CHECK_OK(srlm_sample(s, d, 5, &g2, 0.9f, &tok, NULL));
    CHECK_MSG(tok == 2, "greedy with cuts: got %d", tok);
}

/* ---- exact distribution + inverse-CDF sweep on 12 logits ---- */

static const float L12[12] = {2.0f, 1.5f, 1.5f, 0.3f, -0.5f, 1.5f, 3.0f, -INFINITY, 0.0f, -2.0f, 0.7f, 1.0f};

static void check_exact(srlm_sampler *s, const float *logits, int v, srlm_sampling cfg, const char *what) {
    int rid[64], gid[64], n_ref, n_got = -1;
    double rp[64], gp[64], margin;
    n_ref = ref_dist(logits, v, &cfg, rid, rp, &margin);
    CHECK_MSG(margin > 1e-6, "%s: case too close to the top-p boundary (%g)", what, margin);
    CHECK_OK(srlm_sample_distribution(s, logits, v, &cfg, gid, gp, &n_got));
    CHECK_MSG(n_got == n_ref, "%s: kept %d tokens, want %d", what, n_got, n_ref);
    for (int r = 0; r < n_ref && r < n_got; r++)
        CHECK_MSG(gid[r] == rid[r] && fabs(gp[r] - rp[r]) < 1e-12, "%s: rank %d: got id %d p %.17g, want %d p %.17g",
                  what, r, gid[r], gp[r], rid[r], rp[r]);

    /* Sweep u: the returned token must be the reference's CDF interval containing u.
     * Grid points within 1e-9 of a boundary are skipped (float rounding there). */
    enum { N = 200000 };
    int hit[64] = {0}, bad = 0, skipped = 0;
    for (int i = 0; i < N; i++) {
        float u = (float)((i + 0.5) / N);
        double near, pr = -1;
        int want = ref_pick(rid, rp, n_ref, u, &near), tok = -1;
        CHECK_OK(srlm_sample(s, logits, v, &cfg, u, &tok, &pr));
        if (tok < 0 || tok >= v) { bad++; continue; }
        hit[tok] = 1;
        if (near < 1e-9) { skipped++; continue; }
        double want_p = 0;
        for (int r = 0; r < n_ref; r++)
            if (rid[r] == want) want_p = rp[r];
        if (tok != want || fabs(pr - want_p) > 1e-12) {
            if (bad++ < 3) fprintf(stderr, "%s: u=%.9g: got %d (p %g), want %d (p %g)\n", what, u, tok, pr, want, want_p);
        }
    }
    CHECK_MSG(bad == 0, "%s: %d of %d draws differ from the reference inverse CDF", what, bad, N);
    int kept[64] = {0};
    for (int r = 0; r < n_ref; r++) kept[rid[r]] = 1;
    for (int i = 0; i < v; i++)
        CHECK_MSG(hit[i] == kept[i], "%s: token %d returned %d, kept %d", what, i, hit[i], kept[i]);
    printf("exact %-34s kept %2d  sweep ok (%d boundary points skipped)\n", what, n_ref, skipped);
}

static void test_exact(srlm_sampler *s) {
    check_exact(s, L12, 12, mk(1.0f, 0, 1.0f), "T=1");
    check_exact(s, L12, 12, mk(0.7f, 0, 1.0f), "T=0.7");
    check_exact(s, L12, 12, mk(1.0f, 3, 1.0f), "T=1 k=3 (tie at boundary)");
    check_exact(s, L12, 12, mk(1.0f, 4, 1.0f), "T=1 k=4 (tie at boundary)");
    check_exact(s, L12, 12, mk(1.0f, 1, 1.0f), "T=1 k=1");
    check_exact(s, L12, 12, mk(1.0f, 20, 1.0f), "T=1 k=20 (> finite)");
    check_exact(s, L12, 12, mk(1.0f, 0, 0.6f), "T=1 p=0.6");
    check_exact(s, L12, 12, mk(0.5f, 5, 0.8f), "T=0.5 k=5 p=0.8");
    check_exact(s, L12, 12, mk(2.0f, 0, 0.95f), "T=2 p=0.95");
    check_exact(s, L12, 12, mk(1.0f, 0, 0.05f), "T=1 p=0.05 (top only)");
    check_exact(s, L12, 12, mk(1.5f, 6, 0.7f), "T=1.5 k=6 p=0.7");

    /* top-p cutting between the tied 1.5s (ids 1, 2, 5 in that order): mass before id 1
     * is p(6)+p(0), before id 2 adds p(1); a top_p between them keeps {6, 0, 1}. */
    int rid[64];
    double rp[64];
    srlm_sampling t1 = mk(1.0f, 0, 1.0f);
    ref_dist(L12, 12, &t1, rid, rp, NULL);
    CHECK(rid[0] == 6 && rid[1] == 0 && rid[2] == 1 && rid[3] == 2 && rid[4] == 5);
    float p_mid = (float)(rp[0] + rp[1] + 0.5 * rp[2]);
    check_exact(s, L12, 12, mk(1.0f, 0, p_mid), "T=1 p between tied tokens");
    int ids[64], n = 0;
    double pr[64];
    srlm_sampling tp = mk(1.0f, 0, p_mid);
    CHECK_OK(srlm_sample_distribution(s, L12, 12, &tp, ids, pr, &n));
    CHECK_MSG(n == 3 && ids[2] == 1, "tied cut keeps the lower id: n %d, last %d", n, ids[n - 1]);
}

/* ---- bigger rows with many ties: exercises the partitioning paths ---- */

static void test_random_rows(srlm_sampler *s) {
    enum { V = 4000 };
    static float row[V];
    static int rid[V], gid[V];
    static double rp[V], gp[V];
    uint64_t key = srlm_rng_key(7, 1);
    const srlm_sampling cfgs[] = {mk(1.0f, 0, 1.0f), mk(0.8f, 0, 0.9f), mk(1.2f, 50, 1.0f), mk(1.0f, 40, 0.7f),
                                  mk(0.3f, 0, 0.5f), mk(2.0f, 1000, 0.99f), mk(1.0f, 0, 0.999f)};
    int rows = 0, bad = 0, draws = 0, skipped = 0;
    for (int trial = 0; trial < 40; trial++) {
        int v = trial % 4 == 0 ? 37 : V;
        for (int i = 0; i < v; i++) {
            uint64_t c = (uint64_t)trial * V + i;
            /* Coarse values (many ties), some masked, a few dominant tokens. */
            double x = round(srlm_rng_normal(key, c) * 4.0) / 2.0;
            if (srlm_rng_uniform(key, 1000000 + c) < 0.05f) x = -INFINITY;
            if (i % 997 == 5) x += 6.0;
            row[i] = (float)x;
        }
        srlm_sampling cfg = cfgs[trial % (int)(sizeof cfgs / sizeof cfgs[0])];
        double margin;
        int n_ref = ref_dist(row, v, &cfg, rid, rp, &margin), n_got = -1;
        if (margin < 1e-9) continue;  /* cut decided by rounding: skip this row */
        rows++;
        CHECK_OK(srlm_sample_distribution(s, row, v, &cfg, gid, gp, &n_got));
        int same = n_got == n_ref;
        for (int r = 0; same && r < n_ref; r++) same = gid[r] == rid[r] && fabs(gp[r] - rp[r]) < 1e-12;
        CHECK_MSG(same, "row %d (T %g k %d p %g): distribution differs (kept %d, want %d)", trial,
                  (double)cfg.temperature, cfg.top_k, (double)cfg.top_p, n_got, n_ref);
        for (int j = 0; j < 300; j++) {
            float u = srlm_sample_uniform(99, (uint64_t)trial, (uint64_t)j);
            double near, pr;
            int want = ref_pick(rid, rp, n_ref, u, &near), tok = -1;
            CHECK_OK(srlm_sample(s, row, v, &cfg, u, &tok, &pr));
            draws++;
            if (near < 1e-9) { skipped++; continue; }
            if (tok != want && bad++ < 3)
                fprintf(stderr, "row %d u=%.9g: got %d, want %d\n", trial, u, tok, want);
        }
    }
    CHECK_MSG(bad == 0, "%d of %d draws on random rows differ from the reference", bad, draws);
    CHECK(rows >= 30);
    printf("random rows: %d rows, %d draws match the reference (%d skipped at boundaries)\n", rows, draws - skipped,
           skipped);
}

/* ---- statistics ---- */

static void test_histogram(srlm_sampler *s, srlm_sampling cfg, const char *what) {
    int rid[64];
    double rp[64];
    int n = ref_dist(L12, 12, &cfg, rid, rp, NULL);
    enum { SAMPLES = 1000, POSITIONS = 200 };  /* 200k draws */
    long count[12] = {0};
    int outside = 0;
    for (int sm = 0; sm < SAMPLES; sm++)
        for (int pos = 0; pos < POSITIONS; pos++) {
            int tok = -1;
            CHECK_OK(srlm_sample(s, L12, 12, &cfg, srlm_sample_uniform(12345, (uint64_t)sm, (uint64_t)pos), &tok, NULL));
            if (tok >= 0 && tok < 12) count[tok]++;
        }
    double chi2 = 0.0, total = (double)SAMPLES * POSITIONS;
    int in_kept = 0;
    for (int r = 0; r < n; r++) {
        double e = total * rp[r];
        CHECK_MSG(e >= 5.0, "%s: expected count %g too small for chi-square", what, e);
        chi2 += (count[rid[r]] - e) * (count[rid[r]] - e) / e;
        in_kept += (int)count[rid[r]];
    }
    outside = (int)total - in_kept;
    int df = n - 1;
    CHECK(df >= 1 && df <= 15);
    double crit = df >= 1 && df <= 15 ? CHI2_CRIT_1E6[df] : 0;
    CHECK_MSG(outside == 0, "%s: %d draws outside the kept set", what, outside);
    CHECK_MSG(chi2 < crit, "%s: chi-square %.2f >= %.2f (df %d)", what, chi2, crit, df);
    printf("chi-square %-22s %7.2f  (df %2d, critical %.2f at 1e-6)\n", what, chi2, df, crit);
}

static double corr(const double *x, const double *y, int n) {
    double mx = 0, my = 0, sxy = 0, sxx = 0, syy = 0;
    for (int i = 0; i < n; i++) { mx += x[i]; my += y[i]; }
    mx /= n;
    my /= n;
    for (int i = 0; i < n; i++) {
        sxy += (x[i] - mx) * (y[i] - my);
        sxx += (x[i] - mx) * (x[i] - mx);
        syy += (y[i] - my) * (y[i] - my);
    }
    return sxy / sqrt(sxx * syy);
}

static void test_uniform(void) {
    enum { SAMPLES = 1000, POSITIONS = 200, N = SAMPLES * POSITIONS, BINS = 100 };
    static double a[N], b[N], c[N], d[N];
    long hist[BINS] = {0};
    int range_bad = 0;
    for (int sm = 0; sm < SAMPLES; sm++)
        for (int pos = 0; pos < POSITIONS; pos++) {
            float u = srlm_sample_uniform(2024, (uint64_t)sm, (uint64_t)pos);
            if (!(u >= 0.0f && u < 1.0f)) range_bad++;
            else hist[(int)(u * BINS)]++;
            int i = sm * POSITIONS + pos;
            a[i] = u;
            b[i] = srlm_sample_uniform(2024, (uint64_t)sm, (uint64_t)pos + 1);  /* next position */
            c[i] = srlm_sample_uniform(2024, (uint64_t)sm + 1, (uint64_t)pos);  /* next sample */
            d[i] = srlm_sample_uniform(2025, (uint64_t)sm, (uint64_t)pos);      /* next seed */
        }
    CHECK_MSG(range_bad == 0, "%d draws outside [0, 1)", range_bad);
    double chi2 = 0.0, e = (double)N / BINS;
    for (int i = 0; i < BINS; i++) chi2 += (hist[i] - e) * (hist[i] - e) / e;
    CHECK_MSG(chi2 < CHI2_CRIT_1E6_DF99, "uniform draws: chi-square %.2f >= %.2f", chi2, CHI2_CRIT_1E6_DF99);
    printf("chi-square uniform (100 bins)    %7.2f  (df 99, critical %.2f at 1e-6)\n", chi2, CHI2_CRIT_1E6_DF99);

    /* Under independence a correlation over N pairs is about normal(0, 1/N). */
    double lim = Z_1E6 / sqrt((double)N);
    double r_pos = corr(a, b, N), r_smp = corr(a, c, N), r_seed = corr(a, d, N);
    CHECK_MSG(fabs(r_pos) < lim, "consecutive positions correlate: %g (limit %g)", r_pos, lim);
    CHECK_MSG(fabs(r_smp) < lim, "consecutive samples correlate: %g (limit %g)", r_smp, lim);
    CHECK_MSG(fabs(r_seed) < lim, "consecutive seeds correlate: %g (limit %g)", r_seed, lim);
    printf("correlations: position %+.5f, sample %+.5f, seed %+.5f (limit %.5f at 1e-6)\n", r_pos, r_smp, r_seed, lim);

    /* A pure function: the same key gives the same draw, whatever came before. */
    CHECK(srlm_sample_uniform(5, 6, 7) == srlm_sample_uniform(5, 6, 7));
    CHECK(a[3 * POSITIONS + 17] == srlm_sample_uniform(2024, 3, 17));
    int same = 0;
    for (int i = 0; i < 1000; i++) same += a[i] == b[i] || a[i] == c[i] || a[i] == d[i];
    CHECK_MSG(same < 5, "%d of 1000 draws repeat across keys", same);
}

/* ---- transformers' warpers ---- */

static void test_fixture(srlm_sampler *s) {
    char path[1024];
    snprintf(path, sizeof path, "%s/sampler/reference.json", test_env("SRLM_FIXTURES", "tests/fixtures"));
    char *text = test_read_file(path, NULL);
    cJSON *ref = text ? cJSON_Parse(text) : NULL;
    free(text);
    CHECK_MSG(ref != NULL, "cannot read %s", path);
    if (!ref) return;
    int v = cJSON_GetObjectItem(ref, "vocab")->valueint;
    float logits[256];
    CHECK(v > 0 && v <= 256);
    if (v <= 0 || v > 256) { cJSON_Delete(ref); return; }
    for (int i = 0; i < v; i++) {
        cJSON *x = cJSON_GetArrayItem(cJSON_GetObjectItem(ref, "logits"), i);
        logits[i] = cJSON_IsString(x) ? -INFINITY : (float)x->valuedouble;
    }
    int cases = 0;
    cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(ref, "cases")) {
        srlm_sampling cfg = mk((float)cJSON_GetObjectItem(c, "temperature")->valuedouble,
                               cJSON_GetObjectItem(c, "top_k")->valueint,
                               (float)cJSON_GetObjectItem(c, "top_p")->valuedouble);
        cJSON *ids = cJSON_GetObjectItem(c, "ids"), *probs = cJSON_GetObjectItem(c, "probs");
        int n_ref = cJSON_GetArraySize(ids), gid[256], n = -1;
        double gp[256], worst = 0;
        CHECK_OK(srlm_sample_distribution(s, logits, v, &cfg, gid, gp, &n));
        CHECK_MSG(n == n_ref, "transformers case %d: kept %d, want %d", cases, n, n_ref);
        for (int r = 0; r < n && r < n_ref; r++) {
            int want = cJSON_GetArrayItem(ids, r)->valueint;
            double wp = cJSON_GetArrayItem(probs, r)->valuedouble;
            CHECK_MSG(gid[r] == want, "transformers case %d rank %d: id %d, want %d", cases, r, gid[r], want);
            if (fabs(gp[r] - wp) > worst) worst = fabs(gp[r] - wp);
        }
        CHECK_MSG(worst < 1e-6, "transformers case %d: probability off by %g", cases, worst);
        printf("transformers T=%.2f k=%-3d p=%.2f: kept %2d, max |dp| %.2g\n", (double)cfg.temperature, cfg.top_k,
               (double)cfg.top_p, n, worst);
        cases++;
    }
    CHECK(cases >= 8);
    cJSON_Delete(ref);
}

/* ---- bad inputs ---- */

static void expect_bad(srlm_status st, const char *what) {
    CHECK_MSG(st == SRLM_BAD_INPUT && srlm_last_error()[0], "%s: status %d, message '%s'", what, (int)st,
              srlm_last_error());
    srlm_clear_error();
}

static void test_bad_inputs(srlm_sampler *s) {
    int tok;
    const float ok[] = {0.0f, 1.0f, 2.0f};
    const srlm_sampling bad_cfgs[] = {mk(-1.0f, 0, 1.0f), mk(NAN, 0, 1.0f), mk(INFINITY, 0, 1.0f), mk(1.0f, 0, 0.0f),
                                      mk(1.0f, 0, 1.5f),  mk(1.0f, 0, NAN), mk(1.0f, -1, 1.0f),    mk(0.0f, -3, 1.0f),
                                      mk(0.0f, 0, -0.5f)};
    for (size_t i = 0; i < sizeof bad_cfgs / sizeof bad_cfgs[0]; i++) {
        expect_bad(srlm_sample(s, ok, 3, &bad_cfgs[i], 0.5f, &tok, NULL), "bad setting");
        expect_bad(srlm_sampling_validate(&bad_cfgs[i]), "validate bad setting");
    }
    srlm_sampling cfg = mk(1.0f, 0, 1.0f), greedy = mk(0.0f, 0, 1.0f);
    CHECK_OK(srlm_sampling_validate(&cfg));
    const float none[] = {-INFINITY, -INFINITY};
    const float nan_row[] = {0.0f, NAN, 1.0f};
    const float inf_row[] = {0.0f, INFINITY};
    expect_bad(srlm_sample(s, none, 2, &cfg, 0.5f, &tok, NULL), "no finite logit");
    expect_bad(srlm_sample(s, none, 2, &greedy, 0.5f, &tok, NULL), "no finite logit, greedy");
    expect_bad(srlm_sample(s, nan_row, 3, &cfg, 0.5f, &tok, NULL), "NaN logit");
    expect_bad(srlm_sample(s, inf_row, 2, &greedy, 0.5f, &tok, NULL), "+inf logit");
    expect_bad(srlm_sample(s, ok, 0, &cfg, 0.5f, &tok, NULL), "empty row");
    expect_bad(srlm_sample(s, ok, 100000, &cfg, 0.5f, &tok, NULL), "row longer than the sampler");
    expect_bad(srlm_sample(s, ok, 3, NULL, 0.5f, &tok, NULL), "no settings");
    expect_bad(srlm_sample(s, ok, 3, &cfg, 1.0f, &tok, NULL), "u = 1");
    expect_bad(srlm_sample(s, ok, 3, &cfg, -0.25f, &tok, NULL), "u < 0");
    int ids[3], n;
    double pr[3];
    expect_bad(srlm_sample_distribution(s, none, 2, &cfg, ids, pr, &n), "distribution of no finite logit");
    srlm_sampler *t = NULL;
    expect_bad(srlm_sampler_new(&t, 0), "vocab 0");
    CHECK(t == NULL);
}

/* ---- timing (informational) ---- */

static void time_one(srlm_sampler *s, const float *row, int v, srlm_sampling cfg, const char *what) {
    int reps = 300, tok, sink = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < reps; i++) {
        CHECK_OK(srlm_sample(s, row, v, &cfg, srlm_sample_uniform(1, 0, (uint64_t)i), &tok, NULL));
        sink += tok;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double us = ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / 1e3 / reps;
    int ids_n = 0;
    static int ids[32000];
    static double pr[32000];
    CHECK_OK(srlm_sample_distribution(s, row, v, &cfg, ids, pr, &ids_n));
    printf("timing V=%d %-26s %8.1f us/call (kept %d)%s\n", v, what, us, ids_n, sink < 0 ? "!" : "");
}

static void test_timing(void) {
    enum { V = 32000 };
    static float flat[V], peaked[V];
    uint64_t key = srlm_rng_key(3, 3);
    for (int i = 0; i < V; i++) {
        flat[i] = (float)(2.0 * srlm_rng_normal(key, (uint64_t)i));
        peaked[i] = flat[i] + (i % 4001 == 7 ? 12.0f : 0.0f);  /* a few dominant tokens */
    }
    srlm_sampler *s = NULL;
    CHECK_OK(srlm_sampler_new(&s, V));
    if (!s) return;
    time_one(s, flat, V, mk(1.0f, 0, 0.9f), "flat, T=1 p=0.9");
    time_one(s, peaked, V, mk(1.0f, 0, 0.9f), "peaked, T=1 p=0.9");
    time_one(s, peaked, V, mk(0.7f, 50, 0.9f), "peaked, T=0.7 k=50 p=0.9");
    time_one(s, flat, V, mk(1.0f, 0, 1.0f), "flat, T=1 (no cut)");
    time_one(s, flat, V, mk(0.0f, 0, 1.0f), "greedy");
    srlm_sampler_free(s);
}

int main(void) {
    srlm_sampler *s = NULL;
    CHECK_OK(srlm_sampler_new(&s, 4000));
    if (!s) TEST_DONE();
    test_greedy(s);
    test_exact(s);
    test_random_rows(s);
    test_histogram(s, mk(1.0f, 0, 1.0f), "T=1");
    test_histogram(s, mk(0.8f, 8, 0.95f), "T=0.8 k=8 p=0.95");
    test_histogram(s, mk(1.0f, 4, 1.0f), "T=1 k=4 (tie)");
    test_uniform();
    test_fixture(s);
    test_bad_inputs(s);
    test_timing();
    srlm_sampler_free(s);
    TEST_DONE();
}
