#include "io/fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"

srlm_status srlm_mkdir_p(const char *path) {
    char buf[1024];
    size_t n = strlen(path);
    if (n == 0) return SRLM_ERR(SRLM_BAD_INPUT, "cannot create a folder with an empty name");
    if (n >= sizeof buf) return SRLM_ERR(SRLM_BAD_INPUT, "folder name too long: %s", path);
    memcpy(buf, path, n + 1);
    /* Walk the components left to right; the last one is handled after the loop. */
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char saved = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return SRLM_ERR(SRLM_FAILED, "cannot create folder %s: %s", buf, strerror(errno));
        struct stat sb;
        if (stat(buf, &sb) != 0 || !S_ISDIR(sb.st_mode))
            return SRLM_ERR(SRLM_FAILED, "cannot create folder %s: a file of that name is in the way", buf);
        buf[i] = saved;
    }
    return SRLM_OK;
}

srlm_status srlm_fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return SRLM_ERR(SRLM_FAILED, "cannot open folder %s: %s", dir, strerror(errno));
    /* Some file systems refuse fsync on folders (EINVAL); nothing more can be done there. */
    if (fsync(fd) != 0 && errno != EINVAL) {
        int e = errno;
        close(fd);
        return SRLM_ERR(SRLM_FAILED, "cannot fsync folder %s: %s", dir, strerror(e));
    }
    close(fd);
    return SRLM_OK;
}

int srlm_path_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

srlm_status srlm_path_join(char *dst, size_t cap, const char *dir, const char *name) {
    int n = snprintf(dst, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap)
        return SRLM_ERR(SRLM_BAD_INPUT, "path too long: %s/%s", dir, name);
    return SRLM_OK;
}

/* The folder part of `path` ("." when there is none). */
static void dir_of(const char *path, char *dir, size_t cap) {
    const char *slash = strrchr(path, '/');
    if (!slash) { snprintf(dir, cap, "."); return; }
    size_t len = slash == path ? 1 : (size_t)(slash - path);
    if (len >= cap) len = cap - 1;
    memcpy(dir, path, len);
    dir[len] = '\0';
}

srlm_status srlm_atomic_open(srlm_atomic_file *f, const char *path) {
    f->fd = -1;
    f->tmp[0] = '\0';
    if (strlen(path) >= sizeof f->path)
        return SRLM_ERR(SRLM_BAD_INPUT, "path too long: %s", path);
    snprintf(f->path, sizeof f->path, "%s", path);
    char dir[1024];
    dir_of(path, dir, sizeof dir);
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    /* mkstemp gives a name no other writer (thread, process, node) can be using. */
    int n = snprintf(f->tmp, sizeof f->tmp, "%s/.%s.tmp-XXXXXX", dir, base);
    if (n < 0 || (size_t)n >= sizeof f->tmp) {
        f->tmp[0] = '\0';
        return SRLM_ERR(SRLM_BAD_INPUT, "path too long: %s", path);
    }
    f->fd = mkstemp(f->tmp);
    if (f->fd < 0) {
        int e = errno;
        f->tmp[0] = '\0';
        return SRLM_ERR(SRLM_FAILED, "cannot create a file in %s (writing %s): %s", dir, path,
                        strerror(e));
    }
    (void)fchmod(f->fd, 0644); /* mkstemp makes 0600; outputs are meant to be shared */
    return SRLM_OK;
}

srlm_status srlm_atomic_write(srlm_atomic_file *f, const void *data, size_t n) {
    const char *p = data;
    while (n > 0) {
        ssize_t w = write(f->fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return SRLM_ERR(SRLM_FAILED, "cannot write %s: %s", f->path, strerror(errno));
        }
        p += w;
        n -= (size_t)w;
    }
    return SRLM_OK;
}

srlm_status srlm_atomic_commit(srlm_atomic_file *f) {
    srlm_status st = SRLM_OK;
    if (fsync(f->fd) != 0) {
        st = SRLM_ERR(SRLM_FAILED, "cannot fsync %s: %s", f->path, strerror(errno));
        goto fail;
    }
    int rc = close(f->fd);
    f->fd = -1;
    if (rc != 0) {
        st = SRLM_ERR(SRLM_FAILED, "cannot close %s: %s", f->path, strerror(errno));
        goto fail;
    }
    if (rename(f->tmp, f->path) != 0) {
        st = SRLM_ERR(SRLM_FAILED, "cannot rename %s to %s: %s", f->tmp, f->path, strerror(errno));
        goto fail;
    }
    f->tmp[0] = '\0';
    char dir[1024];
    dir_of(f->path, dir, sizeof dir);
    return srlm_fsync_dir(dir);
fail:
    srlm_atomic_abort(f);
    return st;
}

void srlm_atomic_abort(srlm_atomic_file *f) {
    if (f->fd >= 0) close(f->fd);
    f->fd = -1;
    if (f->tmp[0]) unlink(f->tmp);
    f->tmp[0] = '\0';
}

srlm_status srlm_write_file_atomic(const char *path, const void *data, size_t n) {
    srlm_atomic_file f;
    srlm_status st;
    SRLM_CHECK(srlm_atomic_open(&f, path));
    SRLM_CHECK_GOTO(srlm_atomic_write(&f, data, n), st, fail);
    return srlm_atomic_commit(&f);
fail:
    srlm_atomic_abort(&f);
    return st;
}

int srlm_remove_tree_quiet(const char *path, char *failed, size_t cap) {
    struct stat sb;
    if (lstat(path, &sb) != 0) {
        if (errno == ENOENT) return 0;
        snprintf(failed, cap, "%s", path);
        return errno;
    }
    if (S_ISDIR(sb.st_mode)) {
        DIR *d = opendir(path);
        if (!d) {
            snprintf(failed, cap, "%s", path);
            return errno;
        }
        int err = 0;
        struct dirent *e;
        char child[2048];
        while (!err && (e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            int k = snprintf(child, sizeof child, "%s/%s", path, e->d_name);
            if (k < 0 || (size_t)k >= sizeof child) {
                snprintf(failed, cap, "%s/%s", path, e->d_name);
                err = ENAMETOOLONG;
            } else {
                err = srlm_remove_tree_quiet(child, failed, cap);
            }
        }
        closedir(d);
        if (err) return err;
        if (rmdir(path) != 0) {
            snprintf(failed, cap, "%s", path);
            return errno;
        }
        return 0;
    }
    if (unlink(path) != 0) {
        snprintf(failed, cap, "%s", path);
        return errno;
    }
    return 0;
}

srlm_status srlm_remove_tree(const char *path) {
    char failed[2048] = "";
    int err = srlm_remove_tree_quiet(path, failed, sizeof failed);
    if (err) return SRLM_ERR(SRLM_FAILED, "cannot remove %s: %s", failed, strerror(err));
    return SRLM_OK;
}

/* The temporary names srlm_atomic_open makes: ".NAME.tmp-" and mkstemp's six characters. */
static int is_atomic_leftover(const char *name) {
    size_t n = strlen(name);
    return name[0] == '.' && n > 11 && !strncmp(name + n - 11, ".tmp-", 5);
}

int srlm_remove_atomic_leftovers(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int count = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char path[2048];
        int k = snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (k < 0 || (size_t)k >= sizeof path) continue; /* no writer could have made it */
        struct stat sb;
        if (lstat(path, &sb) != 0) continue;
        if (S_ISDIR(sb.st_mode)) count += srlm_remove_atomic_leftovers(path);
        else if (S_ISREG(sb.st_mode) && is_atomic_leftover(e->d_name) && unlink(path) == 0) {
            count++;
            SRLM_WARN("removed %s, left by a writer that was stopped in the middle", path);
        }
    }
    closedir(d);
    return count;
}

srlm_status srlm_copy_dir(const char *src, const char *dst) {
    char tmp[1100], from[1200], to[1200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", dst) >= (int)sizeof tmp) return SRLM_ERR(SRLM_BAD_INPUT, "%s: path too long", dst);
    SRLM_CHECK(srlm_remove_tree(tmp));
    SRLM_CHECK(srlm_mkdir_p(tmp));
    DIR *d = opendir(src);
    if (!d) return SRLM_ERR(SRLM_BAD_INPUT, "%s: cannot open folder: %s", src, strerror(errno));
    srlm_status st = SRLM_OK;
    struct dirent *e;
    char *buf = malloc(1 << 20);
    if (!buf) st = SRLM_ERR(SRLM_FAILED, "out of memory");
    while (st == SRLM_OK && (e = readdir(d)) != NULL) {
        struct stat sb;
        if (srlm_path_join(from, sizeof from, src, e->d_name) != SRLM_OK) continue;
        if (stat(from, &sb) != 0 || !S_ISREG(sb.st_mode)) continue;
        st = srlm_path_join(to, sizeof to, tmp, e->d_name);
        FILE *in = st == SRLM_OK ? fopen(from, "rb") : NULL;
        srlm_atomic_file out;
        if (st == SRLM_OK && !in) st = SRLM_ERR(SRLM_FAILED, "%s: cannot open: %s", from, strerror(errno));
        if (st == SRLM_OK) st = srlm_atomic_open(&out, to);
        size_t n;
        while (st == SRLM_OK && (n = fread(buf, 1, 1 << 20, in)) > 0) st = srlm_atomic_write(&out, buf, n);
        if (st == SRLM_OK && ferror(in)) st = SRLM_ERR(SRLM_FAILED, "%s: read error", from);
        if (st == SRLM_OK) st = srlm_atomic_commit(&out);
        else if (in) srlm_atomic_abort(&out);
        if (in) fclose(in);
    }
    closedir(d);
    free(buf);
    SRLM_CHECK(st);
    SRLM_CHECK(srlm_fsync_dir(tmp));
    SRLM_CHECK(srlm_remove_tree(dst));
    if (rename(tmp, dst) != 0) return SRLM_ERR(SRLM_FAILED, "cannot rename %s to %s: %s", tmp, dst, strerror(errno));
    char parent[1100];
    snprintf(parent, sizeof parent, "%s", dst);
    char *slash = strrchr(parent, '/');
    if (slash) *slash = 0; else snprintf(parent, sizeof parent, ".");
    return srlm_fsync_dir(parent);
}

srlm_status srlm_read_file(const char *path, const char *what, size_t max_bytes, char **out, size_t *len) {
    *out = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return SRLM_ERR(SRLM_BAD_INPUT, "%s: cannot open %s: %s", path, what, strerror(errno));
    srlm_status st = SRLM_OK;
    size_t n = 0, cap = 0;
    char *buf = NULL;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = cap ? 2 * cap : 16384;
            char *grown = realloc(buf, cap);
            if (!grown) {
                st = SRLM_ERR(SRLM_FAILED, "%s: out of memory reading %s", path, what);
                goto done;
            }
            buf = grown;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (max_bytes && n > max_bytes) {
            st = SRLM_ERR(SRLM_BAD_INPUT, "%s: %s is larger than %zu bytes", path, what, max_bytes);
            goto done;
        }
        if (got == 0) break;
    }
    if (ferror(f)) {
        st = SRLM_ERR(SRLM_BAD_INPUT, "%s: cannot read %s: %s", path, what, strerror(errno));
        goto done;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    buf = NULL;
done:
    free(buf);
    fclose(f);
    return st;
}
