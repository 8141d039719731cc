/* Creating a backend from the config's backend.name. Kept out of backend.h
 * because the CUDA kernels (compiled as C++ by nvcc) include backend.h, and
 * io/config.h drags in the YAML schema. */
#ifndef SRLM_BACKEND_FACTORY_H
#define SRLM_BACKEND_FACTORY_H

#include "backend/backend.h"
#include "io/config.h"

/* cpu: srlm_backend_cpu_new(threads); cpu_guarded: the same ops on memory the
 * host cannot touch (a test of the device-memory paths); cuda: srlm_backend_cuda_new(device) in
 * CUDA builds, else SRLM_BAD_INPUT saying the build has no CUDA backend. `device` is
 * the rank's node-local index (the GPU of that number, or the only one a
 * process sees when each rank is given its own). Every error message starts
 * with "backend.name: NAME: ". */
srlm_status srlm_backend_new(srlm_backend_kind kind, int threads, int device, srlm_backend **be);

/* The name of a kind as the config spells it ("cpu", "cuda", "cpu_guarded"). */
const char *srlm_backend_kind_name(srlm_backend_kind kind);

/* The kind a config spells `name` ("cpu", "cuda", "cpu_guarded"); SRLM_BAD_INPUT
 * naming the choices when it is none of them. */
srlm_status srlm_backend_kind_parse(const char *name, srlm_backend_kind *kind);

/* The dtype a config or flag spells `name` for backend.dtype ("float32",
 * "bfloat16"); SRLM_BAD_INPUT naming the choices when it is neither. */
srlm_status srlm_backend_dtype_parse(const char *name, srlm_dtype *dtype);

#endif
