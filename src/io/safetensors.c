#include "io/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/fsutil.h"
#include "io/jsonl.h"

/* The reference implementation refuses headers above 100 MB; so do we, so that a
 * lying length cannot make us allocate gigabytes. */
#define ST_MAX_HEADER (100u * 1000u * 1000u)
/* JSON numbers are doubles: integers above 2^53 are not exact. */
#define ST_MAX_JSON_INT 9007199254740992.0

/* ---------------------------------------------------------------- helpers */

int64_t srlm_st_numel(const srlm_st_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

void srlm_st_shape_str(int ndim, const int64_t *shape, char *buf, size_t cap) {
    size_t used = 0;
    if (cap == 0) return;
    buf[0] = '\0';
    for (int i = 0; i <= ndim && used < cap; i++) {
        int n = i == ndim ? snprintf(buf + used, cap - used, "]")
                          : snprintf(buf + used, cap - used, "%s%lld", i ? ", " : "[",
                                     (long long)shape[i]);
        if (n < 0) return;
        used += (size_t)n;
    }
}

void srlm_st_to_f32(float *dst, const void *src, srlm_dtype t, size_t n) {
    size_t es = srlm_dtype_size(t);
    if ((uintptr_t)src % es == 0) {
        srlm_convert_to_f32(dst, src, t, n);
        return;
    }
    /* Unaligned 16-bit loads are undefined behaviour in C: bounce through an aligned buffer. */
    uint32_t bounce[1024];
    const unsigned char *p = src;
    size_t per = sizeof bounce / es;
    while (n > 0) {
        size_t k = n < per ? n : per;
        memcpy(bounce, p, k * es);
        srlm_convert_to_f32(dst, bounce, t, k);
        dst += k;
        p += k * es;
        n -= k;
    }
}

static int parse_dtype(const char *s, srlm_dtype *dt) {
    if (!strcmp(s, "F32")) { *dt = SRLM_F32; return 1; }
    if (!strcmp(s, "BF16")) { *dt = SRLM_BF16; return 1; }
    if (!strcmp(s, "F16")) { *dt = SRLM_F16; return 1; }
    return 0;
}

static const char *json_type(const cJSON *j) {
    if (!j) return "nothing";
    if (cJSON_IsNull(j)) return "null";
    if (cJSON_IsBool(j)) return "a boolean";
    if (cJSON_IsNumber(j)) return "a number";
    if (cJSON_IsString(j)) return "a string";
    if (cJSON_IsArray(j)) return "an array";
    if (cJSON_IsObject(j)) return "an object";
    return "an invalid value";
}

/* A non-negative integer that a double represents exactly. */
static int json_uint(const cJSON *j, uint64_t *out) {
    if (!cJSON_IsNumber(j)) return 0;
    double v = j->valuedouble;
    if (!isfinite(v) || v < 0 || v > ST_MAX_JSON_INT || floor(v) != v) return 0;
    *out = (uint64_t)v;
    return 1;
}

/* Describe a JSON value for a message: the number itself, or its type. */
static void json_describe(const cJSON *j, char *buf, size_t cap) {
    if (cJSON_IsNumber(j)) snprintf(buf, cap, "%.17g", j->valuedouble);
    else if (cJSON_IsString(j)) snprintf(buf, cap, "\"%.60s\"", j->valuestring);
    else snprintf(buf, cap, "%s", json_type(j));
}

static int cmp_by_name(const void *a, const void *b) {
    return strcmp(((const srlm_st_tensor *)a)->name, ((const srlm_st_tensor *)b)->name);
}

static int cmp_by_offset(const void *a, const void *b) {
    const srlm_st_tensor *x = a, *y = b;
    const char *px = x->data, *py = y->data;
    if (px != py) return px < py ? -1 : 1;
    return x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes;
}

/* ---------------------------------------------------------------- reading */

/* Check one header entry and fill `t`. `data`/`data_size` are the data area. */
static srlm_status parse_entry(const char *path, const cJSON *e, const char *data,
                               uint64_t data_size, srlm_st_tensor *t) {
    const char *name = e->string;
    char found[96];
    if (strlen(name) >= sizeof t->name)
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: tensor name '%.60s...' is %zu bytes long (at most %zu)",
                        path, name, strlen(name), sizeof t->name - 1);
    snprintf(t->name, sizeof t->name, "%s", name);
    if (!cJSON_IsObject(e))
        return SRLM_ERR(SRLM_BAD_INPUT,
                        "%s: tensor '%s': expected an object with dtype, shape and data_offsets, found %s",
                        path, name, json_type(e));

    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    if (!dt) return SRLM_ERR(SRLM_BAD_INPUT, "%s: tensor '%s' has no \"dtype\"", path, name);
    if (!cJSON_IsString(dt))
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: tensor '%s': \"dtype\" must be a string, found %s",
                        path, name, json_type(dt));
    if (!parse_dtype(dt->valuestring, &t->dtype))
        return SRLM_ERR(SRLM_BAD_INPUT,
                        "%s: tensor '%s' has unsupported dtype '%.32s' (supported: F32, BF16, F16)",
                        path, name, dt->valuestring);

    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    if (!sh) return SRLM_ERR(SRLM_BAD_INPUT, "%s: tensor '%s' has no \"shape\"", path, name);
    if (!cJSON_IsArray(sh))
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: tensor '%s': \"shape\" must be an array, found %s",
                        path, name, json_type(sh));
    int ndim = cJSON_GetArraySize(sh);
    if (ndim == 0)
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: tensor '%s' is a 0-d scalar (shape []); expected 1 to %d dimensions",
                        path, name, SRLM_ST_MAX_DIMS);
    if (ndim > SRLM_ST_MAX_DIMS)
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: tensor '%s' has %d dimensions; expected at most %d",
                        path, name, ndim, SRLM_ST_MAX_DIMS);
    t->ndim = ndim;
    /* Bytes = product of dims x element size, checked against overflow at every step. */
    uint64_t nbytes = srlm_dtype_size(t->dtype);
    int i = 0;
    for (const cJSON *d = sh->child; d; d = d->next, i++) {
        uint64_t v;
        if (!json_uint(d, &v)) {
            json_describe(d, found, sizeof found);
            return SRLM_ERR(SRLM_BAD_INPUT,
                            "%s: tensor '%s': shape[%d] must be a non-negative integer, found %s",
                            path, name, i, found);
        }
        t->shape[i] = (int64_t)v;
        if (v != 0 && nbytes > UINT64_MAX / v)
            return SRLM_ERR(SRLM_BAD_INPUT, "%s: tensor '%s': shape is too large (size overflows)",
                            path, name);
        nbytes *= v;
    }

    const cJSON *of = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!of) return SRLM_ERR(SRLM_BAD_INPUT, "%s: tensor '%s' has no \"data_offsets\"", path, name);
    uint64_t begin, end;
    if (!cJSON_IsArray(of) || cJSON_GetArraySize(of) != 2 || !json_uint(of->child, &begin) ||
        !json_uint(of->child->next, &end))
        return SRLM_ERR(SRLM_BAD_INPUT,
                        "%s: tensor '%s': \"data_offsets\" must be [begin, end] with non-negative integers",
                        path, name);
    if (end < begin)
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: tensor '%s': data_offsets [%llu, %llu] end before they begin",
                        path, name, (unsigned long long)begin, (unsigned long long)end);
    if (end > data_size)
        return SRLM_ERR(SRLM_BAD_INPUT,
                        "%s: tensor '%s': data_offsets [%llu, %llu] lie outside the data area "
                        "(%llu bytes; is the file truncated?)",
                        path, name, (unsigned long long)begin, (unsigned long long)end,
                        (unsigned long long)data_size);
    if (end - begin != nbytes) {
        char shape[128];
        srlm_st_shape_str(t->ndim, t->shape, shape, sizeof shape);
        return SRLM_ERR(SRLM_BAD_INPUT,
                        "%s: tensor '%s': shape %s x %s needs %llu bytes but data_offsets [%llu, %llu] "
                        "hold %llu bytes",
                        path, name, shape, srlm_dtype_name(t->dtype), (unsigned long long)nbytes,
                        (unsigned long long)begin, (unsigned long long)end,
                        (unsigned long long)(end - begin));
    }
    t->data = data + begin;
    t->nbytes = (size_t)nbytes;
    return SRLM_OK;
}

/* Parse and check the JSON header, filling st->tensors. */
static srlm_status parse_header(srlm_safetensors *st, const char *hdr, size_t hlen,
                                const char *data, uint64_t data_size) {
    const char *path = st->path;
    srlm_status s = SRLM_OK;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, hlen, &end, 0);
    if (!root) {
        const char *err = cJSON_GetErrorPtr();
        long at = err && err >= hdr && err <= hdr + hlen ? (long)(err - hdr) : -1;
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: header is not valid JSON (error near byte %ld of the %zu-byte header)",
                        path, at, hlen);
    }
    /* Only padding (spaces, as the reference writer uses) may follow the object. */
    for (const char *p = end; p < hdr + hlen; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && *p != '\0') {
            s = SRLM_ERR(SRLM_BAD_INPUT, "%s: header is not valid JSON (trailing bytes after the object at byte %ld)",
                         path, (long)(p - hdr));
            goto done;
        }
    }
    if (!cJSON_IsObject(root)) {
        s = SRLM_ERR(SRLM_BAD_INPUT, "%s: header is not a JSON object (found %s)", path, json_type(root));
        goto done;
    }
    /* cJSON keeps a repeated key as a second entry and cuts a name at \u0000:
     * either would make a tensor name mean something else than the file says */
    long nul = srlm_json_nul_escape(hdr, (size_t)(end - hdr));
    if (nul >= 0) {
        s = SRLM_ERR(SRLM_BAD_INPUT, "%s: header: a string holds \\u0000 (a NUL character) at byte %ld of the "
                     "header; expected tensor names and metadata without one", path, nul);
        goto done;
    }
    const cJSON *parent = NULL, *dup = srlm_json_duplicate_key(root, &parent, NULL);
    if (dup) {
        if (parent == root)
            s = SRLM_ERR(SRLM_BAD_INPUT, "%s: tensor '%s' appears more than once in the header", path,
                         dup->string);
        else
            s = SRLM_ERR(SRLM_BAD_INPUT, "%s: header: key \"%s\" appears twice in \"%s\"; a key may "
                         "appear once", path, dup->string, parent->string ? parent->string : "?");
        goto done;
    }
    int n = 0;
    for (const cJSON *e = root->child; e; e = e->next)
        if (strcmp(e->string, "__metadata__") != 0) n++;
    st->tensors = calloc(n ? (size_t)n : 1, sizeof *st->tensors);
    if (!st->tensors) {
        s = SRLM_ERR(SRLM_FAILED, "%s: out of memory for %d tensor entries", path, n);
        goto done;
    }
    for (const cJSON *e = root->child; e; e = e->next) {
        if (!strcmp(e->string, "__metadata__")) {
            if (!cJSON_IsObject(e)) {
                s = SRLM_ERR(SRLM_BAD_INPUT, "%s: \"__metadata__\" must be an object, found %s", path,
                             json_type(e));
                goto done;
            }
            continue;
        }
        SRLM_CHECK_GOTO(parse_entry(path, e, data, data_size, &st->tensors[st->n_tensors]), s, done);
        st->n_tensors++;
    }

    /* Overlap: sorted by where they begin, each must start at or after the furthest
     * end so far. Empty tensors occupy no bytes and cannot overlap. */
    qsort(st->tensors, (size_t)n, sizeof *st->tensors, cmp_by_offset);
    const srlm_st_tensor *reach = NULL;
    for (int i = 0; i < n; i++) {
        const srlm_st_tensor *t = &st->tensors[i];
        if (t->nbytes == 0) continue;
        const char *tb = t->data;
        if (reach && tb < (const char *)reach->data + reach->nbytes) {
            const char *rb = reach->data;
            s = SRLM_ERR(SRLM_BAD_INPUT,
                         "%s: tensors '%s' (bytes %lld..%lld) and '%s' (bytes %lld..%lld) overlap in the data area",
                         path, reach->name, (long long)(rb - data), (long long)(rb - data + (long long)reach->nbytes),
                         t->name, (long long)(tb - data), (long long)(tb - data + (long long)t->nbytes));
            goto done;
        }
        if (!reach || tb + t->nbytes > (const char *)reach->data + reach->nbytes) reach = t;
    }
    qsort(st->tensors, (size_t)n, sizeof *st->tensors, cmp_by_name);
    for (int i = 1; i < n; i++) {
        if (!strcmp(st->tensors[i - 1].name, st->tensors[i].name)) {
            s = SRLM_ERR(SRLM_BAD_INPUT, "%s: tensor '%s' appears more than once in the header", path,
                         st->tensors[i].name);
            goto done;
        }
    }
done:
    cJSON_Delete(root);
    return s;
}

srlm_status srlm_st_open(srlm_safetensors *st, const char *path) {
    srlm_status s = SRLM_OK;
    char *hdr = NULL;
    memset(st, 0, sizeof *st);
    if (strlen(path) >= sizeof st->path)
        return SRLM_ERR(SRLM_BAD_INPUT, "path too long: %s", path);
    snprintf(st->path, sizeof st->path, "%s", path);

    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return SRLM_ERR(errno == ENOENT ? SRLM_BAD_INPUT : SRLM_FAILED, "cannot open %s: %s", path,
                        strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        s = SRLM_ERR(SRLM_FAILED, "cannot stat %s: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(sb.st_mode)) {
        s = SRLM_ERR(SRLM_BAD_INPUT, "%s: not a regular file", path);
        goto fail;
    }
    uint64_t size = (uint64_t)sb.st_size;
    if (size < 8) {
        s = SRLM_ERR(SRLM_BAD_INPUT, "%s: file is %llu bytes, shorter than the 8-byte header length "
                     "(not a safetensors file, or truncated)", path, (unsigned long long)size);
        goto fail;
    }
    if (size > SIZE_MAX) {
        s = SRLM_ERR(SRLM_FAILED, "%s: file too large to map", path);
        goto fail;
    }
    st->map = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (st->map == MAP_FAILED) {
        st->map = NULL;
        s = SRLM_ERR(SRLM_FAILED, "cannot mmap %s: %s", path, strerror(errno));
        goto fail;
    }
    st->map_size = (size_t)size;
    close(fd);
    fd = -1;

    const unsigned char *b = st->map;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | b[i];
    if (hlen > size - 8) {
        s = SRLM_ERR(SRLM_BAD_INPUT, "%s: header length %llu runs past the end of the file "
                     "(%llu bytes after the 8-byte length; not a safetensors file, or truncated)",
                     path, (unsigned long long)hlen, (unsigned long long)(size - 8));
        goto fail;
    }
    if (hlen > ST_MAX_HEADER) {
        s = SRLM_ERR(SRLM_BAD_INPUT, "%s: header length %llu is above the %u-byte limit", path,
                     (unsigned long long)hlen, ST_MAX_HEADER);
        goto fail;
    }
    /* A NUL-terminated private copy: the parser never reads near the mapping's end. */
    hdr = malloc((size_t)hlen + 1);
    if (!hdr) {
        s = SRLM_ERR(SRLM_FAILED, "%s: out of memory for a %llu-byte header", path, (unsigned long long)hlen);
        goto fail;
    }
    memcpy(hdr, b + 8, (size_t)hlen);
    hdr[hlen] = '\0';
    SRLM_CHECK_GOTO(parse_header(st, hdr, (size_t)hlen, (const char *)b + 8 + hlen, size - 8 - hlen),
                    s, fail);
    free(hdr);
    return SRLM_OK;
fail:
    free(hdr);
    if (fd >= 0) close(fd);
    srlm_st_close(st);
    return s;
}

void srlm_st_close(srlm_safetensors *st) {
    if (st->map) munmap(st->map, st->map_size);
    free(st->tensors);
    st->map = NULL;
    st->map_size = 0;
    st->tensors = NULL;
    st->n_tensors = 0;
}

const srlm_st_tensor *srlm_st_find(const srlm_safetensors *st, const char *name) {
    int lo = 0, hi = st->n_tensors - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(st->tensors[mid].name, name);
        if (c == 0) return &st->tensors[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

/* ---------------------------------------------------------------- writing */

typedef struct {
    char       name[256];
    srlm_dtype dtype;
    int        ndim;
    int64_t    shape[SRLM_ST_MAX_DIMS];
    void      *data;
    size_t     nbytes;
} st_entry;

struct srlm_st_writer {
    st_entry *e;
    int       n, cap;
    size_t    data_bytes;
};

srlm_status srlm_st_writer_new(srlm_st_writer **w) {
    *w = calloc(1, sizeof **w);
    if (!*w) return SRLM_ERR(SRLM_FAILED, "out of memory creating a safetensors writer");
    return SRLM_OK;
}

void srlm_st_writer_free(srlm_st_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) free(w->e[i].data);
    free(w->e);
    free(w);
}

size_t srlm_st_writer_data_bytes(const srlm_st_writer *w) { return w->data_bytes; }

srlm_status srlm_st_writer_add(srlm_st_writer *w, const char *name, srlm_dtype dtype, int ndim,
                               const int64_t *shape, const float *data) {
    size_t len = strlen(name);
    if (len == 0 || len >= sizeof w->e[0].name || !strcmp(name, "__metadata__"))
        return SRLM_ERR(SRLM_BAD_INPUT, "cannot write tensor '%.60s': name must be 1 to 255 bytes "
                        "and not __metadata__", name);
    if (ndim < 1 || ndim > SRLM_ST_MAX_DIMS)
        return SRLM_ERR(SRLM_BAD_INPUT, "cannot write tensor '%s': %d dimensions (expected 1 to %d)",
                        name, ndim, SRLM_ST_MAX_DIMS);
    if (dtype != SRLM_F32 && dtype != SRLM_BF16 && dtype != SRLM_F16)
        return SRLM_ERR(SRLM_BAD_INPUT, "cannot write tensor '%s': unknown dtype %d", name, (int)dtype);
    for (int i = 0; i < w->n; i++)
        if (!strcmp(w->e[i].name, name))
            return SRLM_ERR(SRLM_BAD_INPUT, "cannot write tensor '%s' twice in one file", name);
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return SRLM_ERR(SRLM_BAD_INPUT, "cannot write tensor '%s': negative shape[%d] = %lld", name,
                            i, (long long)shape[i]);
        if (shape[i] != 0 && numel > SIZE_MAX / 4 / (uint64_t)shape[i])
            return SRLM_ERR(SRLM_BAD_INPUT, "cannot write tensor '%s': shape too large", name);
        numel *= (size_t)shape[i];
    }
    if (w->n == w->cap) {
        int cap = w->cap ? 2 * w->cap : 16;
        st_entry *e = realloc(w->e, (size_t)cap * sizeof *e);
        if (!e) return SRLM_ERR(SRLM_FAILED, "out of memory adding tensor '%s'", name);
        w->e = e;
        w->cap = cap;
    }
    st_entry *e = &w->e[w->n];
    memset(e, 0, sizeof *e);
    memcpy(e->name, name, len + 1);
    e->dtype = dtype;
    e->ndim = ndim;
    memcpy(e->shape, shape, (size_t)ndim * sizeof *shape);
    e->nbytes = numel * srlm_dtype_size(dtype);
    e->data = malloc(e->nbytes ? e->nbytes : 1);
    if (!e->data) return SRLM_ERR(SRLM_FAILED, "out of memory copying tensor '%s' (%zu bytes)", name, e->nbytes);
    srlm_convert_from_f32(e->data, dtype, data, numel);
    w->data_bytes += e->nbytes;
    w->n++;
    return SRLM_OK;
}

/* A growing string for the header. */
typedef struct { char *p; size_t len, cap; } strbuf;

static srlm_status sb_printf(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static srlm_status sb_printf(strbuf *b, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) return SRLM_ERR(SRLM_FAILED, "formatting a safetensors header failed");
        if (b->p && b->len + (size_t)n < b->cap) { b->len += (size_t)n; return SRLM_OK; }
        size_t cap = b->cap ? b->cap : 256;
        while (cap <= b->len + (size_t)n) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return SRLM_ERR(SRLM_FAILED, "out of memory building a safetensors header");
        b->p = p;
        b->cap = cap;
    }
}

/* A JSON string literal: quote, backslash and control bytes escaped. */
static srlm_status sb_json_string(strbuf *b, const char *s) {
    SRLM_CHECK(sb_printf(b, "\""));
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') SRLM_CHECK(sb_printf(b, "\\%c", c));
        else if (c < 0x20) SRLM_CHECK(sb_printf(b, "\\u%04x", c));
        else SRLM_CHECK(sb_printf(b, "%c", c));
    }
    return sb_printf(b, "\"");
}

srlm_status srlm_st_writer_write(srlm_st_writer *w, const char *path) {
    srlm_status s = SRLM_OK;
    strbuf h = {0};
    srlm_atomic_file f = {.fd = -1};
    SRLM_CHECK_GOTO(sb_printf(&h, "{\"__metadata__\":{\"format\":\"pt\"}"), s, done);
    uint64_t off = 0;
    for (int i = 0; i < w->n; i++) {
        const st_entry *e = &w->e[i];
        SRLM_CHECK_GOTO(sb_printf(&h, ","), s, done);
        SRLM_CHECK_GOTO(sb_json_string(&h, e->name), s, done);
        SRLM_CHECK_GOTO(sb_printf(&h, ":{\"dtype\":\"%s\",\"shape\":[", srlm_dtype_name(e->dtype)), s, done);
        for (int d = 0; d < e->ndim; d++)
            SRLM_CHECK_GOTO(sb_printf(&h, "%s%lld", d ? "," : "", (long long)e->shape[d]), s, done);
        SRLM_CHECK_GOTO(sb_printf(&h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                                  (unsigned long long)(off + e->nbytes)), s, done);
        off += e->nbytes;
    }
    SRLM_CHECK_GOTO(sb_printf(&h, "}"), s, done);
    /* Pad with spaces so the data area starts 8-aligned (8 + header length). */
    while (h.len % 8) SRLM_CHECK_GOTO(sb_printf(&h, " "), s, done);

    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)h.len >> (8 * i));
    SRLM_CHECK_GOTO(srlm_atomic_open(&f, path), s, done);
    SRLM_CHECK_GOTO(srlm_atomic_write(&f, len8, 8), s, done);
    SRLM_CHECK_GOTO(srlm_atomic_write(&f, h.p, h.len), s, done);
    for (int i = 0; i < w->n; i++)
        SRLM_CHECK_GOTO(srlm_atomic_write(&f, w->e[i].data, w->e[i].nbytes), s, done);
    SRLM_CHECK_GOTO(srlm_atomic_commit(&f), s, done);
done:
    if (s != SRLM_OK) srlm_atomic_abort(&f);
    free(h.p);
    return s;
}
