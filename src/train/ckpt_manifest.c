#include "train/ckpt_manifest.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/sha256.h"
#include "core/watchdog.h"
#include "io/fsutil.h"

#define MANIFEST_FORMAT "srlm-checkpoint-manifest-1"
#define MAX_MANIFEST    (64u << 20) /* bytes: a manifest is a few KiB */
#define HASH_CHUNK      (4u << 20)

/* One file's result, as bytes so that one BYTE-MAX allreduce gathers every
 * rank's share (ranks leave the files of others all zero):
 * [0] state, [1..8] size little-endian, [9..40] sha256. */
enum { REC = 41 };
enum { H_NONE = 0, H_OK = 1, H_MISSING = 2, H_SIZE = 3, H_UNREADABLE = 4 };

typedef struct {
    char   **path;  /* relative to the folder */
    int64_t *bytes; /* verify: the manifest's sizes */
    char   (*sha)[65];
    int      n, cap;
} file_list;

static void list_free(file_list *l) {
    for (int i = 0; i < l->n; i++) free(l->path[i]);
    free(l->path);
    free(l->bytes);
    free(l->sha);
    memset(l, 0, sizeof *l);
}

static srlm_status list_add(file_list *l, const char *path, int64_t bytes, const char *sha) {
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 16;
        char **p = realloc(l->path, sizeof *p * (size_t)cap);
        if (p) l->path = p;
        int64_t *b = p ? realloc(l->bytes, sizeof *b * (size_t)cap) : NULL;
        if (b) l->bytes = b;
        char(*s)[65] = b ? realloc(l->sha, sizeof *s * (size_t)cap) : NULL;
        if (s) l->sha = s;
        if (!s) return SRLM_ERR(SRLM_FAILED, "out of memory listing checkpoint files");
        l->cap = cap;
    }
    l->path[l->n] = strdup(path);
    if (!l->path[l->n]) return SRLM_ERR(SRLM_FAILED, "out of memory listing checkpoint files");
    l->bytes[l->n] = bytes;
    snprintf(l->sha[l->n], 65, "%s", sha ? sha : "");
    l->n++;
    return SRLM_OK;
}

static int plain_name(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == '"' || *s == '\\') return 0;
    return 1;
}

/* Regular files under root/rel, recursively, as paths relative to root. */
static srlm_status list_dir(const char *root, const char *rel, file_list *l) {
    char dir[1400];
    int k = *rel ? snprintf(dir, sizeof dir, "%s/%s", root, rel) : snprintf(dir, sizeof dir, "%s", root);
    if (k < 0 || (size_t)k >= sizeof dir) return SRLM_ERR(SRLM_FAILED, "path too long: %s/%s", root, rel);
    DIR *d = opendir(dir);
    if (!d) return SRLM_ERR(SRLM_FAILED, "%s: cannot list the checkpoint folder: %s", dir, strerror(errno));
    srlm_status st = SRLM_OK;
    struct dirent *e;
    while (st == SRLM_OK && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue; /* ".", "..", temporary files of atomic writes */
        if (!*rel && !strcmp(e->d_name, SRLM_CKPT_MANIFEST_NAME)) continue;
        if (!plain_name(e->d_name)) continue; /* not srlm's: nothing it reads, and JSON would need escapes */
        char sub[1000], full[1500];
        k = *rel ? snprintf(sub, sizeof sub, "%s/%s", rel, e->d_name) : snprintf(sub, sizeof sub, "%s", e->d_name);
        if (k < 0 || (size_t)k >= sizeof sub) { st = SRLM_ERR(SRLM_FAILED, "path too long: %s/%s", dir, e->d_name); break; }
        snprintf(full, sizeof full, "%s/%s", root, sub);
        struct stat sb;
        if (stat(full, &sb) != 0) { st = SRLM_ERR(SRLM_FAILED, "%s: cannot stat: %s", full, strerror(errno)); break; }
        if (S_ISDIR(sb.st_mode)) st = list_dir(root, sub, l);
        else if (S_ISREG(sb.st_mode)) st = list_add(l, sub, -1, NULL);
    }
    closedir(d);
    return st;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Rank 0's text (len >= 0), or its failure (len < 0), to every rank. */
static srlm_status share_text(srlm_comm *world, char **text, int64_t *len) {
    SRLM_CHECK(srlm_comm_broadcast(world, len, sizeof *len, 0));
    if (*len < 0) return SRLM_OK;
    if (srlm_comm_rank(world) != 0) {
        *text = malloc((size_t)*len + 1);
        if (!*text) return SRLM_ERR(SRLM_FAILED, "out of memory for a checkpoint manifest of %" PRId64 " bytes", *len);
    }
    if (*len > 0) SRLM_CHECK(srlm_comm_broadcast(world, *text, (size_t)*len, 0));
    (*text)[*len] = '\0';
    return SRLM_OK;
}

/* Size and sha256 of DIR/path into rec. expect >= 0: a file of another size is
 * not hashed (H_SIZE). Counts the bytes read into *hashed. */
static void hash_file(const char *dir, const char *path, int64_t expect, unsigned char *buf, unsigned char *rec,
                      double *hashed) {
    char full[1500];
    snprintf(full, sizeof full, "%s/%s", dir, path);
    int fd = open(full, O_RDONLY | O_CLOEXEC);
    if (fd < 0) { rec[0] = errno == ENOENT ? H_MISSING : H_UNREADABLE; return; }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) { rec[0] = H_UNREADABLE; close(fd); return; }
    uint64_t size = (uint64_t)sb.st_size;
    for (int i = 0; i < 8; i++) rec[1 + i] = (unsigned char)(size >> (8 * i));
    if (expect >= 0 && (int64_t)size != expect) { rec[0] = H_SIZE; close(fd); return; }
    srlm_sha256 s;
    srlm_sha256_init(&s);
    uint64_t got = 0;
    for (;;) {
        ssize_t n = read(fd, buf, HASH_CHUNK);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) { rec[0] = H_UNREADABLE; close(fd); return; }
        if (n == 0) break;
        srlm_sha256_update(&s, buf, (size_t)n);
        got += (uint64_t)n;
        *hashed += (double)n;
        srlm_watchdog_progress("hashing a checkpoint");
    }
    close(fd);
    if (got != size) { rec[0] = H_UNREADABLE; return; } /* changed while being read */
    srlm_sha256_final(&s, rec + 9);
    rec[0] = H_OK;
}

/* Every rank hashes files i with i % size == rank; one allreduce gives everyone
 * every result. The last byte says whether some rank could not take part (out
 * of memory): then all fail. */
static srlm_status hash_all(srlm_comm *world, const char *dir, const file_list *l, int with_expect,
                            unsigned char **recs_out, double *bytes) {
    const int rank = srlm_comm_rank(world), size = srlm_comm_size(world);
    size_t n = (size_t)l->n * REC + 1;
    unsigned char *recs = calloc(n, 1), *buf = malloc(HASH_CHUNK);
    double hashed = 0;
    if (!recs) { free(buf); return SRLM_ERR(SRLM_FAILED, "out of memory hashing %s", dir); }
    if (!buf) recs[n - 1] = 1;
    else
        for (int i = rank; i < l->n; i += size)
            hash_file(dir, l->path[i], with_expect ? l->bytes[i] : -1, buf, recs + (size_t)i * REC, &hashed);
    free(buf);
    srlm_status st = srlm_comm_allreduce(world, recs, n, SRLM_COMM_BYTE, SRLM_REDUCE_MAX);
    if (st == SRLM_OK) st = srlm_comm_allreduce(world, &hashed, 1, SRLM_COMM_F64, SRLM_REDUCE_SUM);
    if (st == SRLM_OK && recs[n - 1]) st = SRLM_ERR(SRLM_FAILED, "out of memory hashing %s (on some rank)", dir);
    if (st != SRLM_OK) { free(recs); return st; }
    *recs_out = recs;
    if (bytes) *bytes = hashed;
    return SRLM_OK;
}

static uint64_t rec_size(const unsigned char *rec) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | rec[1 + i];
    return v;
}

/* ---- writing ---- */

srlm_status srlm_ckpt_manifest_write(srlm_comm *world, const char *dir) {
    const int rank = srlm_comm_rank(world);
    file_list l = {0};
    char *text = NULL, *out = NULL;
    unsigned char *recs = NULL;
    int64_t len = -1;
    srlm_status st = SRLM_OK, st0 = SRLM_OK;
    srlm_watchdog_progress("hashing a checkpoint");
    if (rank == 0) { /* the list, as lines, for everyone */
        st0 = list_dir(dir, "", &l);
        if (st0 == SRLM_OK) {
            qsort(l.path, (size_t)l.n, sizeof *l.path, cmp_str); /* sizes and digests: not filled yet */
            size_t cap = 1;
            for (int i = 0; i < l.n; i++) cap += strlen(l.path[i]) + 1;
            text = malloc(cap);
            if (!text) st0 = SRLM_ERR(SRLM_FAILED, "out of memory writing the manifest of %s", dir);
            else {
                size_t used = 0;
                for (int i = 0; i < l.n; i++) used += (size_t)sprintf(text + used, "%s\n", l.path[i]);
                len = (int64_t)used;
            }
        }
    }
    SRLM_CHECK_GOTO(share_text(world, &text, &len), st, done);
    if (len < 0) {
        st = rank == 0 ? st0 : SRLM_ERR(SRLM_FAILED, "rank 0 could not list the checkpoint folder %s", dir);
        goto done;
    }
    if (rank != 0) /* the same list from the text */
        for (char *p = text, *nl; *p && st == SRLM_OK; p = nl + 1) {
            nl = strchr(p, '\n');
            if (!nl) break;
            *nl = '\0';
            st = list_add(&l, p, -1, NULL);
            *nl = '\n';
        }
    if (st != SRLM_OK) goto done;
    SRLM_CHECK_GOTO(hash_all(world, dir, &l, 0, &recs, NULL), st, done);
    for (int i = 0; i < l.n; i++)
        if (recs[(size_t)i * REC] != H_OK) { /* the same verdict on every rank */
            st = SRLM_ERR(SRLM_FAILED, "%s/%s vanished or could not be read while its checkpoint was being saved",
                          dir, l.path[i]);
            goto done;
        }
    if (rank == 0) {
        size_t cap = 128 + (size_t)l.n * 1200, used = 0;
        out = malloc(cap);
        if (!out) { st = SRLM_ERR(SRLM_FAILED, "out of memory writing the manifest of %s", dir); goto done; }
        used += (size_t)snprintf(out + used, cap - used, "{\"format\": \"%s\", \"files\": [", MANIFEST_FORMAT);
        for (int i = 0; i < l.n; i++) {
            char hex[65];
            srlm_sha256_digest_hex(recs + (size_t)i * REC + 9, hex);
            used += (size_t)snprintf(out + used, cap - used, "%s\n {\"path\": \"%s\", \"bytes\": %" PRIu64
                                     ", \"sha256\": \"%s\"}", i ? "," : "", l.path[i],
                                     rec_size(recs + (size_t)i * REC), hex);
        }
        used += (size_t)snprintf(out + used, cap - used, "\n]}\n");
        char path[1400];
        SRLM_CHECK_GOTO(srlm_path_join(path, sizeof path, dir, SRLM_CKPT_MANIFEST_NAME), st, done);
        SRLM_CHECK_GOTO(srlm_write_file_atomic(path, out, used), st, done);
    }
done:
    free(out);
    free(recs);
    free(text);
    list_free(&l);
    return st;
}

/* ---- verifying ---- */

/* A relative path inside the folder: no leading '/', no ".." part, printable. */
static int safe_path(const char *p) {
    if (!*p || *p == '/' || strlen(p) >= 900) return 0;
    for (const char *s = p; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == '\\') return 0;
    for (const char *s = p; s; s = strchr(s, '/')) {
        if (*s == '/') s++;
        if (!strncmp(s, "..", 2) && (s[2] == '/' || !s[2])) return 0;
    }
    return 1;
}

static int is_hex64(const char *s) {
    if (strlen(s) != 64) return 0;
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return 1;
}

/* The manifest's files, or a reason in why (then *valid = 0). */
static srlm_status parse_manifest(const char *mpath, const char *text, file_list *l, int *valid, char *why,
                                  size_t cap) {
    *valid = 0;
    cJSON *root = cJSON_Parse(text);
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(root, "format");
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(root, "files");
    srlm_status st = SRLM_OK;
    if (!cJSON_IsObject(root) || !cJSON_IsString(fmt) || strcmp(fmt->valuestring, MANIFEST_FORMAT) ||
        !cJSON_IsArray(files) || cJSON_GetArraySize(files) < 1) {
        snprintf(why, cap, "%s is not a valid checkpoint manifest (want {\"format\": \"%s\", \"files\": [...]})",
                 mpath, MANIFEST_FORMAT);
        goto done;
    }
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, files) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(e, "path");
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(e, "bytes");
        const cJSON *h = cJSON_GetObjectItemCaseSensitive(e, "sha256");
        if (!cJSON_IsString(p) || !safe_path(p->valuestring) || !cJSON_IsNumber(b) || b->valuedouble < 0 ||
            b->valuedouble > 9007199254740992.0 || b->valuedouble != (double)(int64_t)b->valuedouble ||
            !cJSON_IsString(h) || !is_hex64(h->valuestring)) {
            snprintf(why, cap, "%s: entry %d of \"files\" is not {\"path\": relative path, \"bytes\": size, "
                     "\"sha256\": 64 hex digits}", mpath, i + 1);
            goto done;
        }
        SRLM_CHECK_GOTO(list_add(l, p->valuestring, (int64_t)b->valuedouble, h->valuestring), st, done);
        i++;
    }
    *valid = 1;
done:
    cJSON_Delete(root);
    return st;
}

srlm_status srlm_ckpt_manifest_verify(srlm_comm *world, const char *dir, int *ok, char *why, size_t cap,
                                      double *bytes) {
    const int rank = srlm_comm_rank(world);
    char mpath[1400];
    file_list l = {0};
    char *text = NULL;
    unsigned char *recs = NULL;
    int64_t len = -1;
    int valid = 0;
    srlm_status st = SRLM_OK;
    *ok = 0;
    if (bytes) *bytes = 0;
    if (cap) why[0] = '\0';
    srlm_watchdog_progress("verifying a checkpoint");
    SRLM_CHECK(srlm_path_join(mpath, sizeof mpath, dir, SRLM_CKPT_MANIFEST_NAME));
    if (rank == 0) { /* -1: missing, -2: unreadable or too large */
        FILE *f = fopen(mpath, "rb");
        if (!f) len = errno == ENOENT ? -1 : -2;
        else {
            text = malloc(MAX_MANIFEST + 1);
            size_t n = text ? fread(text, 1, MAX_MANIFEST + 1, f) : 0;
            len = !text ? -3 : ferror(f) || n > MAX_MANIFEST ? -2 : (int64_t)n;
            fclose(f);
        }
    }
    SRLM_CHECK_GOTO(share_text(world, &text, &len), st, done);
    if (len == -3) { st = SRLM_ERR(SRLM_FAILED, "out of memory reading %s", mpath); goto done; }
    if (len < 0) {
        snprintf(why, cap, len == -1 ? "%s is missing (it is written last: the checkpoint is incomplete, or "
                                       "from an srlm without checkpoint manifests)"
                                     : "%s cannot be read, or is larger than a manifest can be",
                 SRLM_CKPT_MANIFEST_NAME);
        goto done;
    }
    SRLM_CHECK_GOTO(parse_manifest(SRLM_CKPT_MANIFEST_NAME, text, &l, &valid, why, cap), st, done);
    if (!valid) goto done;
    SRLM_CHECK_GOTO(hash_all(world, dir, &l, 1, &recs, bytes), st, done);
    int bad = 0;
    for (int i = 0; i < l.n; i++) {
        const unsigned char *r = recs + (size_t)i * REC;
        char hex[65];
        if (r[0] == H_OK) {
            srlm_sha256_digest_hex(r + 9, hex);
            if (!strcmp(hex, l.sha[i])) continue;
        }
        if (bad++) continue; /* the first problem in full, then a count */
        if (r[0] == H_MISSING)
            snprintf(why, cap, "%s is missing (the manifest lists it with %" PRId64 " bytes)", l.path[i], l.bytes[i]);
        else if (r[0] == H_SIZE)
            snprintf(why, cap, "%s has %" PRIu64 " bytes, the manifest says %" PRId64 " (truncated or overwritten)",
                     l.path[i], rec_size(r), l.bytes[i]);
        else if (r[0] == H_OK)
            snprintf(why, cap, "%s: sha256 %.16s... differs from the manifest's %.16s... (the file was changed "
                     "or corrupted)", l.path[i], hex, l.sha[i]);
        else
            snprintf(why, cap, "%s cannot be read", l.path[i]);
    }
    if (bad > 1) {
        size_t u = strlen(why);
        if (u < cap) snprintf(why + u, cap - u, "; and %d more file(s) differ", bad - 1);
    }
    *ok = bad == 0;
done:
    free(recs);
    free(text);
    list_free(&l);
    return st;
}
