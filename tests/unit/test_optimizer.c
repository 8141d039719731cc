/* AdamW, gradient clipping and lr schedules against torch 2.5.1 and
 * transformers 4.46.3 (tests/fixtures/optimizer/reference.json, written by
 * tests/fixtures/make_optimizer_fixtures.py). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "train/optimizer.h"
#include "train/schedule.h"

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) { free(buf); buf = NULL; }
    if (buf) buf[n] = 0;
    fclose(f);
    return buf;
}

static const cJSON *get(const cJSON *obj, const char *key) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it) { fprintf(stderr, "fixture: missing key \"%s\"\n", key); exit(1); }
    return it;
}

/* A JSON array of numbers as fp32 (the fixture prints 9 digits: exact). */
static float *floats(const cJSON *arr, size_t *n) {
    *n = (size_t)cJSON_GetArraySize(arr);
    float *x = malloc(*n * sizeof *x);
    size_t i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) x[i++] = (float)it->valuedouble;
    return x;
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double d = 0;
    for (size_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - (double)b[i]));
    return d;
}

static size_t count_unequal(const float *a, const float *b, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += a[i] != b[i];
    return k;
}

/* Largest distance in units in the last place (same-sign values). */
static double max_ulps(const float *a, const float *b, size_t n) {
    double d = 0;
    for (size_t i = 0; i < n; i++) {
        if (a[i] == b[i]) continue;
        if ((a[i] < 0) != (b[i] < 0)) return INFINITY;
        d = fmax(d, fabs((double)a[i] - (double)b[i]) / (nextafterf(fabsf(b[i]), INFINITY) - fabsf(b[i])));
    }
    return d;
}

static double max_abs(const float *a, size_t n) {
    double d = 0;
    for (size_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i]));
    return d;
}

static const char *const TENSORS[2] = {"weight", "norm"};

/* Replay torch's AdamW steps on each tensor of each case. */
static void test_adamw(const cJSON *ref) {
    const cJSON *a = get(ref, "adamw");
    const double beta1 = get(a, "beta1")->valuedouble, beta2 = get(a, "beta2")->valuedouble;
    const double eps = get(a, "eps")->valuedouble;
    const cJSON *cases = get(a, "cases");
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        const double lr = get(c, "lr")->valuedouble;
        for (int k = 0; k < 2; k++) {
            const char *name = TENSORS[k];
            const double wd = get(get(a, "weight_decay"), name)->valuedouble;
            size_t n, ng;
            float *p = floats(get(get(a, "init"), name), &n);
            float *p0 = malloc(n * sizeof *p0);
            memcpy(p0, p, n * sizeof *p);
            float *m = calloc(n, sizeof *m), *v = calloc(n, sizeof *v);
            srlm_adamw_hparams h = {.lr = lr, .beta1 = beta1, .beta2 = beta2, .eps = eps,
                                    .weight_decay = wd};
            const cJSON *grads = get(get(a, "grads"), name);
            const cJSON *steps = get(c, name);
            double dp = 0, dm = 0, dv = 0, ddelta = 0, ulps = 0;
            size_t ne_p = 0, ne_mv = 0, total = 0, lost = 0;
            for (int t = 1; t <= cJSON_GetArraySize(steps); t++) {
                float *g = floats(cJSON_GetArrayItem(grads, t - 1), &ng);
                CHECK(ng == n);
                /* torch's param groups: decay only where weight_decay != 0 */
                srlm_adamw_step(p, g, m, v, n, &h, t, wd != 0.0);
                const cJSON *st = cJSON_GetArrayItem(steps, t - 1);
                size_t np_;
                float *want_p = floats(get(st, "param"), &np_);
                CHECK(np_ == n);
                dp = fmax(dp, max_abs_diff(p, want_p, n));
                ne_p += count_unequal(p, want_p, n);
                ulps = fmax(ulps, max_ulps(p, want_p, n));
                total += n;
                /* Deltas relative to lr (DESIGN: "compare weight deltas
                 * relative to the learning rate"); a lost update has a delta
                 * of 0 where torch's is about lr. */
                for (size_t i = 0; i < n; i++) {
                    double dc = (double)p[i] - p0[i], dt = (double)want_p[i] - p0[i];
                    ddelta = fmax(ddelta, fabs(dc - dt) / lr);
                    lost += dt != 0 && dc == 0;
                }
                if (cJSON_GetObjectItemCaseSensitive(st, "exp_avg")) {
                    size_t nm, nv;
                    float *want_m = floats(get(st, "exp_avg"), &nm);
                    float *want_v = floats(get(st, "exp_avg_sq"), &nv);
                    CHECK(nm == n && nv == n);
                    dm = fmax(dm, max_abs_diff(m, want_m, n) / max_abs(want_m, n));
                    dv = fmax(dv, max_abs_diff(v, want_v, n) / max_abs(want_v, n));
                    ne_mv += count_unequal(m, want_m, n) + count_unequal(v, want_v, n);
                    free(want_m);
                    free(want_v);
                }
                free(want_p);
                free(g);
            }
            printf("adamw lr=%g %-6s: params max|diff| %.3g (%zu of %zu differ, max %g ulp), "
                   "max|delta diff|/lr %.3g, m,v max rel diff %.3g %.3g (%zu differ)\n",
                   lr, name, dp, ne_p, total, ulps, ddelta, dm, dv, ne_mv);
            /* Both sides are fp32 with the same operations in the same order;
             * torch's CPU sqrt (MKL) is off by an ulp on some inputs where
             * sqrtf is exact, which can move a param by one ulp (~1.2e-7 at
             * magnitude 1, ~2.4e-7 up to 2.9). 1e-6 allows a few ulps and
             * still catches any change of formula (a missing bias correction
             * or decay changes params by ~lr = 1e-3, or ~lr/10 = 1e-4). */
            CHECK_MSG(dp <= 1e-6, "%s lr %g: params differ by %g", name, lr, dp);
            /* Measured: at most 1 ulp (3 of 1311 weight values at lr 1e-3, the
             * rest equal); 2 leaves room for another libm's pow. */
            CHECK_MSG(ulps <= 2, "%s lr %g: params differ by %g ulp", name, lr, ulps);
            /* One param ulp is at most 0.05 * 5.5e-6 at |p| < 3. */
            CHECK_MSG(ddelta <= 0.05, "%s lr %g: deltas differ by %g lr", name, lr, ddelta);
            CHECK_MSG(lost == 0, "%s lr %g: %zu updates lost", name, lr, lost);
            /* m and v involve only IEEE mul, sub and fma (no libm, no sqrt):
             * with torch's FMAs mirrored they equal torch's bit for bit on
             * any machine, so any difference is a change of formula or order. */
            CHECK_MSG(ne_mv == 0, "%s: %zu moment values differ (max rel %g, %g)", name, ne_mv,
                      dm, dv);
            free(p);
            free(p0);
            free(m);
            free(v);
        }
    }
}

/* A formula change must be visible: decay on the norm vector, or a step
 * count off by one, changes params far beyond the tolerance. */
static void test_adamw_sensitivity(void) {
    float p[2] = {1.0f, -0.5f}, m[2] = {0}, v[2] = {0};
    float q[2] = {1.0f, -0.5f}, mq[2] = {0}, vq[2] = {0};
    const float g[2] = {0.3f, -0.2f};
    srlm_adamw_hparams h = {.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8,
                            .weight_decay = 0.1};
    srlm_adamw_step(p, g, m, v, 2, &h, 1, 1);
    srlm_adamw_step(q, g, mq, vq, 2, &h, 1, 0);
    CHECK(fabs((double)p[0] - q[0]) > 5e-5); /* decay 1e-4 * p */
    /* First step of Adam moves each param by lr * sign(g) (to within eps and
     * one fp32 ulp of the param, 1.2e-7 at 1.0). */
    CHECK(fabs(((double)q[0] - 1.0) + 1e-3) < 1.5e-7);
    CHECK(fabs(((double)q[1] + 0.5) - 1e-3) < 1.5e-7);
    /* Zero gradient, zero state: only the decay acts. */
    float z[1] = {2.0f}, zm[1] = {0}, zv[1] = {0};
    const float zg[1] = {0};
    srlm_adamw_step(z, zg, zm, zv, 1, &h, 1, 1);
    CHECK(z[0] == 2.0f * (float)(1.0 - 1e-4));
}

static void test_clip(const cJSON *ref) {
    const cJSON *a = get(ref, "adamw"), *cases = get(ref, "clip"), *c;
    size_t n[2];
    float *g[2];
    for (int k = 0; k < 2; k++)
        g[k] = floats(cJSON_GetArrayItem(get(get(a, "grads"), TENSORS[k]), 0), &n[k]);
    cJSON_ArrayForEach(c, cases) {
        const double max_norm = get(c, "max_norm")->valuedouble;
        const double want_total = get(c, "total_norm")->valuedouble;
        double ss = 0;
        for (int k = 0; k < 2; k++) ss += srlm_sum_squares(g[k], n[k]);
        const double total = sqrt(ss);
        const double rel_total = fabs(total - want_total) / want_total;
        const double f = srlm_clip_factor(total, max_norm);
        double rel_g = 0;
        for (int k = 0; k < 2; k++) {
            float *x = malloc(n[k] * sizeof *x);
            memcpy(x, g[k], n[k] * sizeof *x);
            srlm_scale_f32(x, n[k], (float)f);
            size_t nw;
            float *want = floats(get(get(c, "clipped"), TENSORS[k]), &nw);
            CHECK(nw == n[k]);
            rel_g = fmax(rel_g, max_abs_diff(x, want, n[k]) / max_abs(want, n[k]));
            free(want);
            free(x);
        }
        printf("clip max_norm=%g: total norm rel diff %.3g, factor %.9g, clipped grads rel diff %.3g\n",
               max_norm, rel_total, f, rel_g);
        /* torch sums in fp32 per tensor, we in double: ~1e-7 relative. */
        CHECK_MSG(rel_total <= 1e-6, "total norm %.9g, torch %.9g", total, want_total);
        CHECK_MSG(rel_g <= 1e-6, "clipped gradients differ by %g relative", rel_g);
        CHECK(max_norm < want_total ? f < 1.0 : f == 1.0);
    }
    free(g[0]);
    free(g[1]);
    CHECK(srlm_clip_factor(10.0, 0.0) == 1.0);
    CHECK(srlm_clip_factor(0.5, 1.0) == 1.0);
    CHECK(fabs(srlm_clip_factor(4.0, 1.0) - 1.0 / (4.0 + 1e-6)) < 1e-15);
    CHECK(isnan(srlm_clip_factor(NAN, 1.0)));
    CHECK(srlm_clip_factor(INFINITY, 1.0) == 0.0);
    /* The sum's order is fixed, so it is reproducible and exact on small integers. */
    const float ints[11] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
    CHECK(srlm_sum_squares(ints, 11) == 506.0);
    CHECK(srlm_sum_squares(ints, 0) == 0.0);
}

static srlm_train_config sched_config(const char *kind, double lr, double lr_min, int warmup) {
    srlm_train_config c;
    memset(&c, 0, sizeof c);
    c.lr = lr;
    c.lr_min = lr_min;
    c.warmup_steps = warmup;
    c.schedule = !strcmp(kind, "cosine")   ? SRLM_SCHEDULE_COSINE
                 : !strcmp(kind, "linear") ? SRLM_SCHEDULE_LINEAR
                                           : SRLM_SCHEDULE_CONSTANT;
    return c;
}

static void test_schedules_vs_transformers(const cJSON *ref) {
    const cJSON *c;
    cJSON_ArrayForEach(c, get(ref, "schedules")) {
        const char *kind = get(c, "schedule")->valuestring;
        const double lr = get(c, "lr")->valuedouble, lr_min = get(c, "lr_min")->valuedouble;
        const int warmup = get(c, "warmup")->valueint;
        const long total = get(c, "total")->valueint;
        srlm_train_config cfg = sched_config(kind, lr, lr_min, warmup);
        const cJSON *lrs = get(c, "lrs");
        CHECK(cJSON_GetArraySize(lrs) == total);
        double worst = 0;
        for (long s = 0; s < total; s++) {
            const double want = cJSON_GetArrayItem(lrs, (int)s)->valuedouble;
            worst = fmax(worst, fabs(srlm_lr_at(&cfg, s, total) - want) / lr);
        }
        printf("schedule %-8s lr=%g lr_min=%g warmup=%d total=%ld: max |diff|/lr %.3g\n",
               kind, lr, lr_min, warmup, total, worst);
        /* lr_min = 0: transformers' formula operation for operation (equal
         * bits with the same libm cos; 1e-15 allows another libm's last
         * bit). lr_min > 0 is compared with get_cosine_with_min_lr_schedule_
         * with_warmup, which rounds differently: 1e-14. */
        CHECK_MSG(worst <= (lr_min == 0 ? 1e-15 : 1e-14), "%s: differs by %g lr", kind, worst);
    }
}

static void test_schedule_floor(void) {
    const double lr = 5.5e-6, lr_min = 5.5e-7;
    const long total = 100;
    const char *kinds[2] = {"cosine", "linear"};
    for (int k = 0; k < 2; k++) {
        for (int warmup = 0; warmup <= 10; warmup += 10) {
            srlm_train_config c = sched_config(kinds[k], lr, lr_min, warmup);
            CHECK(srlm_lr_at(&c, 0, total) == (warmup ? 0.0 : lr_min + (lr - lr_min)));
            /* first step after warmup: lr, up to one rounding */
            CHECK(fabs(srlm_lr_at(&c, warmup, total) - lr) <= 1e-15 * lr);
            const double last = srlm_lr_at(&c, total - 1, total);
            CHECK_MSG(last > lr_min && last < lr_min + 0.05 * (lr - lr_min),
                      "%s last step lr %g", kinds[k], last);
            CHECK(srlm_lr_at(&c, total, total) == lr_min);
            CHECK(srlm_lr_at(&c, total + 5, total) == lr_min);
            double prev = srlm_lr_at(&c, warmup, total);
            for (long s = warmup + 1; s <= total; s++) {
                double x = srlm_lr_at(&c, s, total);
                CHECK_MSG(x <= prev && x >= lr_min, "%s step %ld: %g after %g", kinds[k], s, x, prev);
                prev = x;
            }
            for (long s = 1; s < warmup; s++)
                CHECK(srlm_lr_at(&c, s, total) > srlm_lr_at(&c, s - 1, total));
        }
    }
    /* cosine halfway through the decay: the midpoint of lr and lr_min */
    srlm_train_config c = sched_config("cosine", 1e-3, 1e-4, 10);
    CHECK(fabs(srlm_lr_at(&c, 60, 110) - 5.5e-4) < 1e-15);
    /* constant: warmup then lr, lr_min ignored */
    c = sched_config("constant", 1e-3, 1e-4, 4);
    CHECK(srlm_lr_at(&c, 0, 10) == 0.0);
    CHECK(srlm_lr_at(&c, 2, 10) == 1e-3 * 0.5);
    for (long s = 4; s <= 12; s++) CHECK(srlm_lr_at(&c, s, 10) == 1e-3);
    /* warmup 0 and a single step */
    c = sched_config("cosine", 1e-3, 0.0, 0);
    CHECK(srlm_lr_at(&c, 0, 1) == 1e-3);
    CHECK(srlm_lr_at(&c, 1, 1) == 0.0);
}

int main(void) {
    char path[4096];
    snprintf(path, sizeof path, "%s/optimizer/reference.json",
             test_env("SRLM_FIXTURES", "tests/fixtures"));
    char *text = read_text(path);
    CHECK_MSG(text != NULL, "cannot read %s", path);
    cJSON *ref = text ? cJSON_Parse(text) : NULL;
    CHECK_MSG(!text || ref, "%s is not JSON", path);
    if (ref) {
        test_adamw(ref);
        test_clip(ref);
        test_schedules_vs_transformers(ref);
    }
    test_adamw_sensitivity();
    test_schedule_floor();
    cJSON_Delete(ref);
    free(text);
    TEST_DONE();
}
