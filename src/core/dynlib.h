/* Shared libraries opened at run time (dlopen): the GPU libraries (cuBLAS,
 * NCCL) that only a CUDA run needs, so that a CUDA build does not map a few
 * hundred MB of them into every process, CPU runs and tests included. Handles
 * stay open for the life of the process. */
#ifndef SRLM_DYNLIB_H
#define SRLM_DYNLIB_H

#include "core/status.h"

/* Opens `soname` (the dynamic loader's search: RUNPATH, LD_LIBRARY_PATH, the
 * cache), else `dir`/`soname` when dir is not NULL. SRLM_FAILED names the
 * library, what needs it (`why`), the loader's words and what to do. */
srlm_status srlm_dynlib_open(const char *soname, const char *dir, const char *why, void **handle);

/* The address of `name` in the library `soname` opened as `handle`. */
srlm_status srlm_dynlib_sym(void *handle, const char *soname, const char *name, void **fn);

/* The address of `name`, or NULL when this version of the library lacks it
 * (for functions srlm can do without). */
void *srlm_dynlib_sym_optional(void *handle, const char *name);

#endif
