/* Small file-system helpers: mkdir -p and atomic file writes.
 *
 * An atomic write goes to a unique temporary name in the destination's folder
 * (so rename cannot cross file systems), is fsynced, renamed over the final
 * name and the folder is fsynced: a reader sees the old file or the whole new
 * one, never a part, even after a crash. */
#ifndef SRLM_FSUTIL_H
#define SRLM_FSUTIL_H

#include <stddef.h>

#include "core/status.h"

/* Create `path` and any missing parents (mode 0755). Existing folders are fine. */
srlm_status srlm_mkdir_p(const char *path);

/* fsync a folder, so that a rename or create inside it is durable. */
srlm_status srlm_fsync_dir(const char *dir);

/* 1 when `path` exists (any type), 0 otherwise. */
int srlm_path_exists(const char *path);

/* dst = dir + "/" + name; SRLM_BAD_INPUT when it does not fit in `cap`. */
srlm_status srlm_path_join(char *dst, size_t cap, const char *dir, const char *name);

/* A file being written atomically. Streamed: the data never has to sit in
 * memory at once. Either commit or abort it; both release it. */
typedef struct {
    int  fd;
    char path[1024];   /* final name */
    char tmp[1100];    /* unique temporary name in the same folder */
} srlm_atomic_file;

srlm_status srlm_atomic_open(srlm_atomic_file *f, const char *path);
srlm_status srlm_atomic_write(srlm_atomic_file *f, const void *data, size_t n);
/* fsync, close, rename onto the final name, fsync the folder. On failure the
 * temporary file is removed and the final name is untouched. */
srlm_status srlm_atomic_commit(srlm_atomic_file *f);
/* Close and remove the temporary file (safe to call after a failed commit). */
void srlm_atomic_abort(srlm_atomic_file *f);

/* Whole-buffer convenience: open + write + commit. */
srlm_status srlm_write_file_atomic(const char *path, const void *data, size_t n);

/* The whole file, NUL-terminated (*len excludes the NUL), at most max_bytes
 * (0: no limit); `what` names its role in messages ("config", "judge
 * template"): SRLM_BAD_INPUT "PATH: cannot open WHAT: why", "... cannot read
 * WHAT: why", "PATH: WHAT is larger than N bytes"; SRLM_FAILED when out of
 * memory. The caller frees *out. */
srlm_status srlm_read_file(const char *path, const char *what, size_t max_bytes, char **out, size_t *len);

/* Copy the plain files of folder src into a new folder dst (not recursive),
 * through dst.tmp and one rename, so dst is whole or absent. */
srlm_status srlm_copy_dir(const char *src, const char *dst);

/* Remove a file or a folder with everything in it; a missing path is fine. */
srlm_status srlm_remove_tree(const char *path);
/* The same without recording an error (a cleanup after a failure keeps the first
 * message): 0 or an errno value, with `failed` naming what could not be removed. */
int srlm_remove_tree_quiet(const char *path, char *failed, size_t cap);

/* A writer stopped in the middle of an atomic write (killed, out of time) leaves
 * its temporary file DIR/.NAME.tmp-XXXXXX, which no reader takes for NAME.
 * Remove every such file under dir, in all its subfolders, each logged as a
 * warning; returns how many. Only safe while nothing writes under dir. */
int srlm_remove_atomic_leftovers(const char *dir);

#endif
