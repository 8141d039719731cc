/* srlm_st_open on arbitrary bytes. Invariants of a file that opened: every
 * tensor lies inside the data area (after the 8-byte length and the header),
 * holds exactly numel x dtype size bytes, has 1..4 dimensions, no two tensors
 * overlap, names are sorted, unique and found by srlm_st_find; the data can be
 * read (converted) without touching anything outside the mapping. A failure
 * is SRLM_BAD_INPUT naming the file. */
#include "fuzz_util.h"
#include "io/safetensors.h"

static int cmp_ptr(const void *a, const void *b) {
    const srlm_st_tensor *x = *(const srlm_st_tensor *const *)a, *y = *(const srlm_st_tensor *const *)b;
    const char *px = x->data, *py = y->data;
    return px < py ? -1 : px > py;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_input_file("input.safetensors", data, size);
    srlm_safetensors st;
    srlm_clear_error();
    srlm_status s = srlm_st_open(&st, path);
    if (s != SRLM_OK) {
        fuzz_check_failure(s, path);
        FUZZ_CHECK(s == SRLM_BAD_INPUT, "a bad file gave status %d: %s", (int)s, srlm_last_error());
        FUZZ_CHECK(st.map == NULL && st.tensors == NULL && st.n_tensors == 0, "a failed open left state behind");
        srlm_st_close(&st);
        return 0;
    }
    FUZZ_CHECK(st.map_size == size, "mapped %zu of %zu bytes", st.map_size, size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | data[i];
    const char *area = (const char *)st.map + 8 + hlen, *end = (const char *)st.map + st.map_size;
    const srlm_st_tensor **by_off = malloc(sizeof *by_off * (size_t)(st.n_tensors ? st.n_tensors : 1));
    if (!by_off) abort();
    float buf[256];
    for (int i = 0; i < st.n_tensors; i++) {
        const srlm_st_tensor *t = &st.tensors[i];
        const char *d = t->data;
        FUZZ_CHECK(t->ndim >= 1 && t->ndim <= SRLM_ST_MAX_DIMS, "tensor '%s' has %d dims", t->name, t->ndim);
        FUZZ_CHECK(d >= area && d <= end && t->nbytes <= (size_t)(end - d),
                   "tensor '%s' (offset %td, %zu bytes) lies outside the data area of a %zu-byte file", t->name,
                   d - (const char *)st.map, t->nbytes, st.map_size);
        FUZZ_CHECK((uint64_t)srlm_st_numel(t) * srlm_dtype_size(t->dtype) == t->nbytes,
                   "tensor '%s': numel %lld x %zu != %zu bytes", t->name, (long long)srlm_st_numel(t),
                   srlm_dtype_size(t->dtype), t->nbytes);
        FUZZ_CHECK(memchr(t->name, '\0', sizeof t->name) != NULL, "name not terminated");
        FUZZ_CHECK(i == 0 || strcmp(st.tensors[i - 1].name, t->name) < 0, "names not sorted and unique at %d", i);
        FUZZ_CHECK(srlm_st_find(&st, t->name) == t, "srlm_st_find('%s') missed", t->name);
        char shape[160];
        srlm_st_shape_str(t->ndim, t->shape, shape, sizeof shape);
        FUZZ_CHECK(shape[0] == '[', "shape string '%s'", shape);
        /* Touch every byte through the reader's own conversion, in chunks. */
        size_t es = srlm_dtype_size(t->dtype), n = t->nbytes / es;
        for (size_t k = 0; k < n; k += 256) srlm_st_to_f32(buf, d + k * es, t->dtype, n - k < 256 ? n - k : 256);
        by_off[i] = t;
    }
    qsort(by_off, (size_t)st.n_tensors, sizeof *by_off, cmp_ptr);
    const char *reach = area;
    for (int i = 0; i < st.n_tensors; i++) {
        const srlm_st_tensor *t = by_off[i];
        if (t->nbytes == 0) continue;
        FUZZ_CHECK((const char *)t->data >= reach, "tensor '%s' overlaps an earlier one", t->name);
        reach = (const char *)t->data + t->nbytes;
    }
    free(by_off);
    srlm_st_close(&st);
    srlm_st_close(&st); /* harmless twice */
    return 0;
}
