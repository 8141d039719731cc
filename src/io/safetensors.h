/* Reading and writing safetensors files (the Hugging Face weight format).
 *
 * On disk: an 8-byte little-endian header length N, N bytes of JSON header,
 * then the data area. The header maps each tensor name to
 *   {"dtype": "F32"|"BF16"|"F16", "shape": [..], "data_offsets": [begin, end]}
 * with offsets relative to the start of the data area, plus an optional
 * "__metadata__" object of strings.
 *
 * Files are memory-mapped read-only: opening reads only the header, and a
 * tensor's bytes are paged in when (and only where) they are touched. The whole
 * header is checked at open, so a file that opened can be read without further
 * bounds checks; every lie in it is SRLM_BAD_INPUT naming the file and tensor. */
#ifndef SRLM_SAFETENSORS_H
#define SRLM_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "core/dtype.h"
#include "core/status.h"

#define SRLM_ST_MAX_DIMS 4

typedef struct {
    char        name[256];
    srlm_dtype  dtype;
    int         ndim;          /* 1..4: 0-d scalars are refused */
    int64_t     shape[SRLM_ST_MAX_DIMS];
    const void *data;          /* points into the mmap; may be unaligned */
    size_t      nbytes;
} srlm_st_tensor;

typedef struct {
    char            path[1024];
    void           *map;  size_t map_size;
    srlm_st_tensor *tensors; int n_tensors;   /* sorted by name */
} srlm_safetensors;

/* mmap `path` and validate its whole header. On failure `st` is left closed
 * (srlm_st_close on it is harmless). */
srlm_status srlm_st_open(srlm_safetensors *st, const char *path);
void        srlm_st_close(srlm_safetensors *st);
/* NULL if absent. Binary search: tensors are kept sorted by name. */
const srlm_st_tensor *srlm_st_find(const srlm_safetensors *st, const char *name);

/* Number of elements (product of the shape). */
int64_t srlm_st_numel(const srlm_st_tensor *t);
/* "[4096, 11008]" into buf. */
void srlm_st_shape_str(int ndim, const int64_t *shape, char *buf, size_t cap);
/* srlm_convert_to_f32 for a source that may be unaligned (mmap'd data after a
 * header whose length is not a multiple of the element size). */
void srlm_st_to_f32(float *dst, const void *src, srlm_dtype t, size_t n);

/* Writer: collects tensors (data converted from fp32 to `dtype` at add time;
 * the writer owns the copies) and writes one file atomically (temp name, fsync,
 * rename) with __metadata__ {"format":"pt"}. Tensors are laid out in the order
 * added; the header is padded with spaces so the data area starts 8-aligned. */
typedef struct srlm_st_writer srlm_st_writer;
srlm_status srlm_st_writer_new(srlm_st_writer **w);
/* Names must be unique, non-empty and shorter than 256 bytes; ndim 1..4. */
srlm_status srlm_st_writer_add(srlm_st_writer *w, const char *name, srlm_dtype dtype, int ndim,
                               const int64_t *shape, const float *data);
srlm_status srlm_st_writer_write(srlm_st_writer *w, const char *path);
/* Total bytes of tensor data added so far (for deciding where to shard). */
size_t      srlm_st_writer_data_bytes(const srlm_st_writer *w);
void        srlm_st_writer_free(srlm_st_writer *w);

#endif
