#include "core/dynlib.h"

#include <dlfcn.h>
#include <stdio.h>

srlm_status srlm_dynlib_open(const char *soname, const char *dir, const char *why, void **handle) {
    *handle = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (*handle) return SRLM_OK;
    char first[512];
    snprintf(first, sizeof first, "%s", dlerror());
    if (dir && *dir) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, soname);
        *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (*handle) return SRLM_OK;
    }
    return SRLM_ERR(SRLM_FAILED, "cannot load %s, which %s needs: %s; put the folder that holds it on "
                    "LD_LIBRARY_PATH (for example the CUDA toolkit's lib64, or your NCCL module's lib)",
                    soname, why, first);
}

srlm_status srlm_dynlib_sym(void *handle, const char *soname, const char *name, void **fn) {
    dlerror();
    *fn = dlsym(handle, name);
    if (*fn) return SRLM_OK;
    const char *err = dlerror();
    return SRLM_ERR(SRLM_FAILED, "%s has no function %s (%s): a library older than the one srlm was built with?",
                    soname, name, err ? err : "not found");
}

void *srlm_dynlib_sym_optional(void *handle, const char *name) {
    void *fn = dlsym(handle, name);
    dlerror(); /* a missing name is not an error here */
    return fn;
}
