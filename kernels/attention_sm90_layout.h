/* Where the Hopper attention kernels (attention_sm90.cuh) keep bf16 tiles of
 * head rows in shared memory, and the wgmma operand descriptors over them:
 * plain C, so that the CPU tests (tests/unit/test_wgmma_layout.c) check the
 * same arithmetic the kernels run against the PTX ISA's canonical layouts.
 *
 * A tile of `rows` rows of hd bf16 is hd / 64 halves of 64 columns, one after
 * the other; within a half each row is 128 bytes and its 16-byte chunk c sits
 * at c ^ (row % 8) (the 128-byte swizzle). Tile bases are 1024-byte aligned:
 * the swizzle repeats every 8 rows, and the instructions apply it to absolute
 * shared-memory addresses. */
#ifndef SRLM_KERNEL_ATTENTION_SM90_LAYOUT_H
#define SRLM_KERNEL_ATTENTION_SM90_LAYOUT_H

#include <stdint.h>

#ifdef __CUDACC__
#define SRLM_SW128_FN static inline __host__ __device__
#else
#define SRLM_SW128_FN static inline
#endif

enum { SRLM_SW128_ROW_BYTES = 128, SRLM_SW128_GROUP_BYTES = 8 * 128 };

/* Byte offset of 16-byte chunk c (head columns 8c .. 8c + 7) of row r. */
SRLM_SW128_FN uint32_t srlm_sw128_offset(int rows, int r, int c) {
    return (uint32_t)((c >> 3) * rows * SRLM_SW128_ROW_BYTES + r * SRLM_SW128_ROW_BYTES + (((c & 7) ^ (r & 7)) << 4));
}

/* wgmma shared-memory matrix descriptor: start address, leading and stride
 * byte offsets (each >> 4, 14 bits), the 128-byte swizzle (1 in bits 62-63). */
SRLM_SW128_FN uint64_t srlm_sw128_desc(uint32_t addr, uint32_t lead_bytes, uint32_t stride_bytes) {
    return (uint64_t)((addr & 0x3FFFFu) >> 4) | ((uint64_t)((lead_bytes & 0x3FFFFu) >> 4) << 16) |
           ((uint64_t)((stride_bytes & 0x3FFFFu) >> 4) << 32) | (1ull << 62);
}

/* A K-major operand (A, or B not transposed) over the tile at `tile`: its
 * rows are M (or N) from row0 (a multiple of 8), its head columns K, for the
 * 16-column step kk: 32 bytes into each swizzled row a step, the next
 * 64-column half after four; 8-row groups 1024 bytes apart (stride offset;
 * the leading offset is unused with this swizzle). */
SRLM_SW128_FN uint64_t srlm_sw128_desc_k_major(uint32_t tile, int rows, int row0, int kk) {
    return srlm_sw128_desc(tile + (uint32_t)(kk >> 2) * rows * SRLM_SW128_ROW_BYTES +
                               (uint32_t)row0 * SRLM_SW128_ROW_BYTES + (uint32_t)(kk & 3) * 32,
                           16, SRLM_SW128_GROUP_BYTES);
}

/* An N-major B (the instruction's transposed B) over the tile: its rows are
 * K, rows 16 kk .. 16 kk + 15 for step kk; its head columns N, the 64-column
 * halves `rows` rows apart (leading offset), 8-row groups 1024 bytes apart
 * (stride offset). */
SRLM_SW128_FN uint64_t srlm_sw128_desc_n_major(uint32_t tile, int rows, int kk) {
    return srlm_sw128_desc(tile + (uint32_t)kk * 16 * SRLM_SW128_ROW_BYTES, (uint32_t)rows * SRLM_SW128_ROW_BYTES,
                           SRLM_SW128_GROUP_BYTES);
}

#endif
