/* Recorded steps on the guarded CPU backend (backend.h's step ops, a tape in
 * guarded_steps.c), which is how the model's recorded decode path is tested
 * without a GPU, so the tape must be as strict as a CUDA graph:
 *   - a decode-like chain of ops recorded once runs nothing while recording,
 *     and each replay, on new contents of the step's input area, gives the
 *     bits the plain CPU backend gives running the same ops one by one (the
 *     KV cache carrying over from step to step alike), F32 and BF16;
 *   - a host array outside the area, an op a step cannot hold, misuse of
 *     begin/end/replay, freeing memory or moving the area: each fails or
 *     drops the recording, with a message that names the cause. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "core/dtype.h"
#include "core/rng.h"
#include "test.h"

enum { B = 2, NH = 2, NKV = 1, HD = 8, D = NH * HD, KV = NKV * HD, F = 24, V = 40, VPAD = 4, MAX_SEQ = 8, SLOTS = 3 };
static const float POISON = 1536.0f; /* exact in bf16 */
static const uint64_t KEY = 0x5eed;

/* never zero: +-[0.25, 2), rounded to bf16 so that both dtypes hold it exactly */
static float rnd(uint64_t key, uint64_t i) {
    float u = srlm_rng_uniform(key, 2 * i), sign = srlm_rng_uniform(key, 2 * i + 1) < 0.5f ? -1.0f : 1.0f;
    return srlm_bf16_to_f32(srlm_f32_to_bf16(sign * (0.25f + 1.75f * u)));
}

/* The call fails with `want` and a message that holds `needle`. */
#define CHECK_ERR(expr, want, needle)                                                                \
    do {                                                                                             \
        srlm_clear_error();                                                                          \
        srlm_status e_ = (expr);                                                                     \
        CHECK_MSG(e_ == (want) && strstr(srlm_last_error(), (needle)),                               \
                  "%s gave %d \"%s\", wanted %d with \"%s\"", #expr, (int)e_, srlm_last_error(),    \
                  (int)(want), (needle));                                                            \
    } while (0)

/* 1 when the replay ran, 0 when there was nothing to run */
static int replay(srlm_backend *be, uint64_t key) {
    int ran = -1;
    CHECK_OK(be->ops->step_replay(be, key, &ran));
    return ran;
}

/* ---- a decode step's worth of views ---- */

enum { TABLE, WN, WQ, WK, WV, WO, WG, WU, WOUT, KC, VC, /* weights and caches: random */
       X, H, Q, K, VV, ATT, LSE, O, G, U, M, SEL, LOGITS, XC, N_VIEWS /* outputs: poison */ };
static const struct {
    const char *name;
    int64_t     rows, cols;
} SHAPE[N_VIEWS] = {
    [TABLE] = {"table", V, D}, [WN] = {"wn", 1, D}, [WQ] = {"wq", D, D}, [WK] = {"wk", KV, D},
    [WV] = {"wv", KV, D}, [WO] = {"wo", D, D}, [WG] = {"wg", F, D}, [WU] = {"wu", F, D},
    [WOUT] = {"wout", V, F}, [KC] = {"k_cache", SLOTS * MAX_SEQ, KV}, [VC] = {"v_cache", SLOTS * MAX_SEQ, KV},
    [X] = {"x", B, D}, [H] = {"h", B, D}, [Q] = {"q", B, D}, [K] = {"k", B, KV}, [VV] = {"v", B, KV},
    [ATT] = {"att", B, D}, [LSE] = {"lse", B, NH}, [O] = {"o", B, D}, [G] = {"gate", B, F},
    [U] = {"up", B, F}, [M] = {"mlp", B, F}, [SEL] = {"sel", B, F}, [LOGITS] = {"logits", B, V},
    [XC] = {"x_copy", B, D},
};

static float *init_values(int i) {
    const int64_t n = SHAPE[i].rows * SHAPE[i].cols;
    float *h = malloc(sizeof(float) * (size_t)n);
    for (int64_t j = 0; j < n; j++) h[j] = i < X ? rnd(100 + (uint64_t)i, (uint64_t)j) : POISON;
    return h;
}

static void views_new(srlm_backend *be, srlm_view *v, float *const *init) {
    for (int i = 0; i < N_VIEWS; i++) {
        CHECK_OK(be->ops->alloc(be, &v[i], i == LSE ? SRLM_F32 : be->dtype, SHAPE[i].rows, SHAPE[i].cols,
                                SHAPE[i].name));
        CHECK_OK(be->ops->upload(be, &v[i], init[i]));
    }
}

static float *download(srlm_backend *be, const srlm_view *v) {
    float *h = malloc(sizeof(float) * (size_t)(v->rows * v->cols));
    CHECK_OK(be->ops->download(be, h, v));
    return h;
}

/* The ops of a decode step, in a model's order, with one token per sequence. */
static srlm_status decode(srlm_backend *be, srlm_view *v, const int *ids, const int *pos,
                          const srlm_attn_shape *s, const int *rows) {
    const srlm_backend_ops *op = be->ops;
    SRLM_CHECK(op->embedding(be, &v[X], &v[TABLE], ids, B, 0));
    SRLM_CHECK(op->rmsnorm(be, &v[H], &v[X], &v[WN], 1e-5f));
    SRLM_CHECK(op->matmul(be, &v[Q], &v[H], &v[WQ], 0));
    SRLM_CHECK(op->matmul(be, &v[Q], &v[X], &v[WQ], 1)); /* accumulate, recorded as such */
    SRLM_CHECK(op->matmul(be, &v[K], &v[H], &v[WK], 0));
    SRLM_CHECK(op->matmul(be, &v[VV], &v[H], &v[WV], 0));
    SRLM_CHECK(op->rope(be, &v[Q], pos, NH, HD, 10000.0f));
    SRLM_CHECK(op->rope(be, &v[K], pos, NKV, HD, 10000.0f));
    SRLM_CHECK(op->kv_store(be, &v[KC], &v[K], s));
    SRLM_CHECK(op->kv_store(be, &v[VC], &v[VV], s));
    SRLM_CHECK(op->attention(be, &v[ATT], &v[Q], &v[KC], &v[VC], s, &v[LSE]));
    SRLM_CHECK(op->matmul(be, &v[O], &v[ATT], &v[WO], 0));
    SRLM_CHECK(op->add(be, &v[X], &v[O]));
    SRLM_CHECK(op->matmul(be, &v[G], &v[X], &v[WG], 0));
    SRLM_CHECK(op->matmul(be, &v[U], &v[X], &v[WU], 0));
    SRLM_CHECK(op->swiglu(be, &v[M], &v[G], &v[U]));
    SRLM_CHECK(op->copy_rows(be, &v[SEL], &v[M], rows, B));
    SRLM_CHECK(op->matmul(be, &v[LOGITS], &v[SEL], &v[WOUT], 0));
    SRLM_CHECK(op->fill_cols(be, &v[LOGITS], V - VPAD, -INFINITY));
    return op->copy(be, &v[XC], &v[X]);
}

/* A step's host arrays, 6 x B ints: ids, positions, slots, n_past, n_new,
 * rows for copy_rows. step -1: what the recording sees (read by no replay). */
/* each array of the area 256 bytes (SP ints) from the last, as the CUDA
 * backend requires; the rows end the live extent */
enum { SP = 64 };
enum { A_IDS = 0, A_POS = SP, A_SLOT = 2 * SP, A_PAST = 3 * SP, A_NEW = 4 * SP, A_ROWS = 5 * SP, A_INTS = 5 * SP + B };

static void step_arrays(int *a, int step) {
    for (int b = 0; b < B; b++) {
        a[A_IDS + b] = step < 0 ? b : (7 + 5 * step + 13 * b) % V;
        a[A_SLOT + b] = b == 0 ? 2 : 0;
        a[A_PAST + b] = step < 0 ? 0 : 1 + step + 2 * b; /* one more cached row per step */
        a[A_POS + b] = a[A_PAST + b];
        a[A_NEW + b] = 1;
        a[A_ROWS + b] = step < 0 ? 0 : (b + step) % B;
    }
}

static srlm_attn_shape shape_of(const int *a) {
    return (srlm_attn_shape){B, 1, NH, NKV, HD, MAX_SEQ, a + A_SLOT, a + A_PAST, a + A_NEW, 0, NULL};
}

static int same_view(srlm_backend *ga, const srlm_view *a, srlm_backend *gb, const srlm_view *b) {
    float *x = download(ga, a), *y = download(gb, b);
    const int same = memcmp(x, y, sizeof(float) * (size_t)(a->rows * a->cols)) == 0;
    free(x);
    free(y);
    return same;
}

static void test_decode_replay(srlm_dtype dt) {
    const char *dn = srlm_dtype_name(dt);
    srlm_backend *gb = NULL, *pb = NULL;
    CHECK_OK(srlm_backend_cpu_guarded_new(&gb, 2));
    CHECK_OK(srlm_backend_cpu_new(&pb, 2));
    if (!gb || !pb) return;
    gb->dtype = pb->dtype = dt;
    float *init[N_VIEWS];
    srlm_view gv[N_VIEWS], pv[N_VIEWS];
    for (int i = 0; i < N_VIEWS; i++) init[i] = init_values(i);
    views_new(gb, gv, init);
    views_new(pb, pv, init);

    int *area = gb->ops->step_inputs(gb, sizeof(int) * A_INTS);
    CHECK(area != NULL);
    if (!area) return;
    step_arrays(area, -1);
    srlm_attn_shape s = shape_of(area);
    CHECK_OK(gb->ops->step_begin(gb, KEY));
    CHECK_OK(decode(gb, gv, area + A_IDS, area + A_POS, &s, area + A_ROWS));
    CHECK_OK(gb->ops->step_end(gb, 1));
    s = (srlm_attn_shape){0}; /* the recording holds a copy of the shape, not a pointer to it */

    /* recording ran nothing: the outputs still hold poison, the caches their values */
    for (int i = 0; i < N_VIEWS; i++) {
        float *h = download(gb, &gv[i]);
        CHECK_MSG(memcmp(h, init[i], sizeof(float) * (size_t)(SHAPE[i].rows * SHAPE[i].cols)) == 0,
                  "%s: %s changed while recording", dn, SHAPE[i].name);
        free(h);
    }

    for (int step = 0; step < 3; step++) {
        int host[A_INTS];
        step_arrays(area, step);
        memcpy(host, area, sizeof host);
        CHECK_MSG(replay(gb, KEY) == 1, "%s: step %d did not replay", dn, step);
        const srlm_attn_shape hs = shape_of(host);
        CHECK_OK(decode(pb, pv, host + A_IDS, host + A_POS, &hs, host + A_ROWS));
        for (int i = 0; i < N_VIEWS; i++)
            CHECK_MSG(same_view(gb, &gv[i], pb, &pv[i]), "%s step %d: %s differs from the op-by-op run", dn,
                      step, SHAPE[i].name);
    }
    /* the logits are real ones: the padded vocabulary masked, the rest finite */
    float *lg = download(gb, &gv[LOGITS]);
    CHECK(lg[V - 1] == -INFINITY && isfinite(lg[0]) && lg[0] != POISON);
    free(lg);

    for (int i = 0; i < N_VIEWS; i++) {
        gb->ops->free(gb, &gv[i]);
        pb->ops->free(pb, &pv[i]);
        free(init[i]);
    }
    srlm_backend_free(gb);
    srlm_backend_free(pb);
}

/* ---- failures and drops ---- */

typedef struct {
    srlm_backend *be;
    srlm_view     y, x, kc;
    int          *area; /* B ints each SP apart: slots, n_past, n_new, positions (ending the live extent) */
} small;

static small small_new(void) {
    small t = {0};
    CHECK_OK(srlm_backend_cpu_guarded_new(&t.be, 1));
    const srlm_backend_ops *op = t.be->ops;
    CHECK_OK(op->alloc(t.be, &t.y, SRLM_F32, B, KV, "y"));
    CHECK_OK(op->alloc(t.be, &t.x, SRLM_F32, B, KV, "x"));
    CHECK_OK(op->alloc(t.be, &t.kc, SRLM_F32, SLOTS * MAX_SEQ, KV, "k_cache"));
    CHECK_OK(op->fill(t.be, &t.x, 0.5f));
    t.area = op->step_inputs(t.be, sizeof(int) * (3 * SP + B));
    CHECK(t.area != NULL);
    for (int b = 0; b < B; b++) t.area[b] = b, t.area[SP + b] = 0, t.area[2 * SP + b] = 1, t.area[3 * SP + b] = b;
    return t;
}

static void small_free(small *t) {
    t->be->ops->free(t->be, &t->y);
    t->be->ops->free(t->be, &t->x);
    t->be->ops->free(t->be, &t->kc);
    srlm_backend_free(t->be);
}

/* a kept recording of y += x under key */
static void record_add(small *t, uint64_t key) {
    CHECK_OK(t->be->ops->step_begin(t->be, key));
    CHECK_OK(t->be->ops->add(t->be, &t->y, &t->x));
    CHECK_OK(t->be->ops->step_end(t->be, 1));
}

static void test_outside_area(void) {
    small t = small_new();
    srlm_backend *be = t.be;
    const srlm_backend_ops *op = be->ops;
    int stack[B] = {0, 1};
    /* an array ending right at the live extent's end is inside */
    CHECK_OK(op->step_begin(be, 1));
    CHECK_OK(op->rope(be, &t.y, t.area + 3 * SP, NKV, HD, 10000.0f));
    CHECK_OK(op->step_end(be, 1));
    CHECK(replay(be, 1) == 1);
    /* a smaller request shrinks the live extent (the capacity stays): the
     * positions now straddle its end */
    CHECK(op->step_inputs(be, sizeof(int) * (3 * SP + 1)) == t.area);
    CHECK_OK(op->step_begin(be, 2));
    CHECK_ERR(op->rope(be, &t.y, t.area + 3 * SP, NKV, HD, 10000.0f), SRLM_FAILED,
              "recording a step: rope's positions lie outside the step's inputs");
    CHECK_ERR(op->rope(be, &t.y, stack, NKV, HD, 10000.0f), SRLM_FAILED, "rope's positions lie outside");
    CHECK_ERR(op->embedding(be, &t.y, &t.kc, stack, B, 0), SRLM_FAILED, "embedding's ids lie outside");
    CHECK_ERR(op->copy_rows(be, &t.y, &t.x, stack, B), SRLM_FAILED, "copy_rows's rows lie outside");
    /* inside the area, but not at a multiple of 256 bytes from its start */
    CHECK_ERR(op->rope(be, &t.y, t.area + 1, NKV, HD, 10000.0f), SRLM_FAILED, "off their 256-byte alignment");
    srlm_attn_shape s = {B, 1, 1, 1, HD, MAX_SEQ, t.area, stack, t.area + 2 * SP, 0, NULL};
    CHECK_ERR(op->kv_store(be, &t.kc, &t.y, &s), SRLM_FAILED, "kv_store's n_past lie outside");
    s = (srlm_attn_shape){B, 1, 1, 1, HD, MAX_SEQ, stack, t.area + SP, t.area + 2 * SP, 0, NULL};
    CHECK_ERR(op->attention(be, &t.y, &t.y, &t.kc, &t.kc, &s, NULL), SRLM_FAILED, "attention's slots lie outside");
    s = (srlm_attn_shape){B, 1, 1, 1, HD, MAX_SEQ, t.area, t.area + SP, stack, 0, NULL};
    CHECK_ERR(op->kv_store(be, &t.kc, &t.y, &s), SRLM_FAILED, "kv_store's n_new lie outside");
    const int seg[2] = {0, 1};
    s = (srlm_attn_shape){B, 1, 1, 1, HD, MAX_SEQ, t.area, t.area + SP, t.area + 2 * SP, 1, seg};
    CHECK_ERR(op->kv_store(be, &t.kc, &t.y, &s), SRLM_FAILED, "packed sequences");
    /* the first reason is the one step_end gives */
    CHECK_ERR(op->step_end(be, 1), SRLM_FAILED, "rope's positions lie outside the step's inputs");
    CHECK(replay(be, 2) == 0);
    CHECK(replay(be, 1) == 1); /* a failed recording leaves the kept ones be */
    small_free(&t);
}

static void test_not_recordable(void) {
    small t = small_new();
    srlm_backend *be = t.be;
    const srlm_backend_ops *op = be->ops;
    float host[B * KV] = {0};
    int idx[B];
    srlm_view z;
    srlm_comm *comm = NULL;
    CHECK_OK(op->step_begin(be, 3));
    CHECK_ERR(op->download(be, host, &t.y), SRLM_FAILED, "cpu_guarded backend: download cannot be recorded in a step");
    CHECK_ERR(op->upload(be, &t.y, host), SRLM_FAILED, "upload cannot be recorded");
    CHECK_ERR(op->fill(be, &t.y, 1.0f), SRLM_FAILED, "fill cannot be recorded");
    CHECK_ERR(op->row_argmax(be, &t.y, idx, host), SRLM_FAILED, "row_argmax cannot be recorded");
    CHECK_ERR(op->sample(be, &t.y, NULL, host, idx), SRLM_FAILED, "sample cannot be recorded");
    CHECK_ERR(op->matmul_dx(be, &t.y, &t.y, &t.x, 0), SRLM_FAILED, "matmul_dx cannot be recorded");
    CHECK_ERR(op->scale(be, &t.y, 2.0f), SRLM_FAILED, "scale cannot be recorded");
    CHECK_ERR(op->alloc(be, &z, SRLM_F32, 1, 1, "z"), SRLM_FAILED, "alloc cannot be recorded");
    CHECK_ERR(op->device_comm(be, NULL, &comm), SRLM_FAILED, "device_comm cannot be recorded");
    CHECK_ERR(op->step_end(be, 1), SRLM_FAILED, "download cannot be recorded in a step");
    CHECK(replay(be, 3) == 0);
    /* the refused ops ran nothing: y is still the zeros it was made with */
    float *y = download(be, &t.y);
    CHECK(y[0] == 0.0f && y[B * KV - 1] == 0.0f);
    free(y);
    /* free while recording: it frees, and the recording cannot be kept */
    CHECK_OK(op->alloc(be, &z, SRLM_F32, 1, 1, "z"));
    CHECK_OK(op->step_begin(be, 4));
    CHECK_OK(op->add(be, &t.y, &t.x));
    op->free(be, &z);
    CHECK(z.data == NULL);
    CHECK_ERR(op->step_end(be, 1), SRLM_FAILED, "a view was freed");
    CHECK(replay(be, 4) == 0);
    small_free(&t);
}

static void test_misuse_and_drops(void) {
    small t = small_new();
    srlm_backend *be = t.be;
    const srlm_backend_ops *op = be->ops;
    int ran = -1;
    /* begin twice, end without begin, replay while recording */
    CHECK_OK(op->step_begin(be, 5));
    CHECK_ERR(op->step_begin(be, 6), SRLM_FAILED, "step_begin of step 0x6 while step 0x5 is recording");
    CHECK_ERR(op->step_replay(be, 5, &ran), SRLM_FAILED, "step_replay of step 0x5 while");
    CHECK_OK(op->step_end(be, 0));
    CHECK_ERR(op->step_end(be, 1), SRLM_FAILED, "step_end without step_begin");
    CHECK(replay(be, 999) == 0); /* never recorded */

    /* keep 0 discards */
    CHECK_OK(op->step_begin(be, 9));
    CHECK_OK(op->add(be, &t.y, &t.x));
    CHECK_OK(op->step_end(be, 0));
    CHECK(replay(be, 9) == 0);

    /* freeing any view drops the recordings */
    record_add(&t, 7);
    CHECK(replay(be, 7) == 1);
    srlm_view z;
    CHECK_OK(op->alloc(be, &z, SRLM_F32, 1, 1, "z"));
    CHECK(replay(be, 7) == 1); /* an alloc drops nothing */
    op->free(be, &z);
    CHECK(replay(be, 7) == 0);

    /* the area: the same size keeps recordings, a larger one moves it and drops them */
    record_add(&t, 8);
    CHECK(op->step_inputs(be, sizeof(int) * (3 * SP + B)) == t.area);
    CHECK(replay(be, 8) == 1);
    int *moved = op->step_inputs(be, 4096);
    CHECK(moved != NULL && moved != t.area);
    CHECK(moved && moved[3 * SP + 1] == 1); /* the contents come along */
    CHECK(replay(be, 8) == 0);

    /* the replays ran the ops for real, and only they: two of 7, one of 8 */
    float *y = download(be, &t.y);
    CHECK(y[0] == 3 * 0.5f);
    free(y);
    small_free(&t);
}

/* At most GUARDED_STEP_KEYS (8) recordings, the oldest dropped first; a key
 * recorded again replaces its recording and counts as new. */
static void test_keys(void) {
    small t = small_new();
    srlm_backend *be = t.be;
    for (uint64_t k = 100; k < 108; k++) record_add(&t, k);
    record_add(&t, 100);        /* 100 is now the newest, 101 the oldest */
    record_add(&t, 108);        /* drops 101 */
    CHECK(replay(be, 101) == 0);
    for (uint64_t k = 102; k <= 108; k++) CHECK(replay(be, k) == 1);
    CHECK(replay(be, 100) == 1);
    small_free(&t);
}

/* An op's error at replay comes back (the arrays are read, and checked, then). */
static void test_replay_error(void) {
    small t = small_new();
    srlm_backend *be = t.be;
    const srlm_backend_ops *op = be->ops;
    const srlm_attn_shape s = {B, 1, 1, 1, HD, MAX_SEQ, t.area, t.area + SP, t.area + 2 * SP, 0, NULL};
    CHECK_OK(op->step_begin(be, 11));
    CHECK_OK(op->kv_store(be, &t.kc, &t.y, &s));
    CHECK_OK(op->step_end(be, 1));
    t.area[1] = SLOTS; /* past the cache */
    int ran = 0;
    CHECK_ERR(op->step_replay(be, 11, &ran), SRLM_BAD_INPUT, "replaying step 0xb, op 1 of 1 (kv_store)");
    CHECK(ran == 1);
    t.area[1] = 1;
    CHECK(replay(be, 11) == 1);
    small_free(&t);
}

/* The decode length bound a recorded step holds for: multiples of 256 up to
 * 4096, of 1024 past it, never past the cache. */
static void test_len_bound(void) {
    const int cases[][3] = {{1, 8192, 256},     {256, 8192, 256},   {257, 8192, 512},   {4095, 8192, 4096},
                            {4096, 8192, 4096}, {4097, 8192, 5120}, {6000, 8192, 6144}, {8192, 8192, 8192},
                            {300, 300, 300},    {17, 48, 48},       {0, 4096, 256}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const int got = srlm_decode_len_bound(cases[i][0], cases[i][1]);
        CHECK_MSG(got == cases[i][2], "srlm_decode_len_bound(%d, %d) = %d, expected %d", cases[i][0], cases[i][1], got,
                  cases[i][2]);
    }
}

int main(void) {
    test_len_bound();
    test_decode_replay(SRLM_F32);
    test_decode_replay(SRLM_BF16);
    test_outside_area();
    test_not_recordable();
    test_misuse_and_drops();
    test_keys();
    test_replay_error();
    TEST_DONE();
}
