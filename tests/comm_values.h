/* Rank-dependent inputs for the collectives tests (tests/mpi/test_comm.c over
 * MPI, tests/gpu/test_comm_nccl_gpu.c over NCCL): every rank computes what any
 * other rank sent, so each checks its results without talking to the others.
 * Values are exact in their type (bf16 included) and in double, so sums are
 * exact whatever order a library adds them in. */
#ifndef SRLM_TEST_COMM_VALUES_H
#define SRLM_TEST_COMM_VALUES_H

#include <stddef.h>
#include <stdint.h>

#include "core/dtype.h"
#include "dist/comm.h"

/* Every element type and every reduction, for the loops over all of them. */
static const srlm_comm_dtype COMM_DTYPES[] = {SRLM_COMM_F32, SRLM_COMM_F64,  SRLM_COMM_I32,
                                              SRLM_COMM_I64, SRLM_COMM_BYTE, SRLM_COMM_BF16};
static const srlm_reduce_op  COMM_OPS[] = {SRLM_REDUCE_SUM, SRLM_REDUCE_MAX, SRLM_REDUCE_MIN};
enum { COMM_N_DTYPES = sizeof COMM_DTYPES / sizeof COMM_DTYPES[0], COMM_N_OPS = sizeof COMM_OPS / sizeof COMM_OPS[0] };

/* A small signed integer that depends on rank and index; never all zeros. */
static inline int comm_gen(int r, size_t i) { return (int)((r * 131 + (int)(i % 1009) * 17) % 61) - 20; }

/* What rank r holds at element i of a type-t buffer. */
static inline double comm_value(srlm_comm_dtype t, int r, size_t i) {
    double g = comm_gen(r, i);
    switch (t) {
    case SRLM_COMM_F32: return g * 0.5;
    case SRLM_COMM_F64: return g * 0.25;
    case SRLM_COMM_I32: return g * 1000.0;
    case SRLM_COMM_I64: return g * 1e10; /* beyond int32 */
    case SRLM_COMM_BYTE: return g + 40;  /* 20..100: sums wrap mod 256 */
    case SRLM_COMM_BF16: return g * 0.5;
    }
    return 0;
}

static inline void comm_store(srlm_comm_dtype t, void *buf, size_t i, double v) {
    switch (t) {
    case SRLM_COMM_F32: ((float *)buf)[i] = (float)v; break;
    case SRLM_COMM_F64: ((double *)buf)[i] = v; break;
    case SRLM_COMM_I32: ((int32_t *)buf)[i] = (int32_t)v; break;
    case SRLM_COMM_I64: ((int64_t *)buf)[i] = (int64_t)v; break;
    case SRLM_COMM_BYTE: ((uint8_t *)buf)[i] = (uint8_t)(int)v; break;
    case SRLM_COMM_BF16: ((uint16_t *)buf)[i] = srlm_f32_to_bf16((float)v); break;
    }
}

static inline double comm_load(srlm_comm_dtype t, const void *buf, size_t i) {
    switch (t) {
    case SRLM_COMM_F32: return ((const float *)buf)[i];
    case SRLM_COMM_F64: return ((const double *)buf)[i];
    case SRLM_COMM_I32: return ((const int32_t *)buf)[i];
    case SRLM_COMM_I64: return (double)((const int64_t *)buf)[i];
    case SRLM_COMM_BYTE: return ((const uint8_t *)buf)[i];
    case SRLM_COMM_BF16: return srlm_bf16_to_f32(((const uint16_t *)buf)[i]);
    }
    return 0;
}

/* Element i of the reduction `op` over ranks 0 .. size-1. */
static inline double comm_expected(srlm_comm_dtype t, srlm_reduce_op op, int size, size_t i) {
    double acc = comm_value(t, 0, i);
    for (int r = 1; r < size; r++) {
        double v = comm_value(t, r, i);
        acc = op == SRLM_REDUCE_SUM ? acc + v : op == SRLM_REDUCE_MAX ? (v > acc ? v : acc) : (v < acc ? v : acc);
    }
    if (t == SRLM_COMM_BYTE) acc = (double)((unsigned)acc % 256u);
    return acc;
}

static inline float comm_fval(int r, size_t i) { return (float)comm_value(SRLM_COMM_F32, r, i); }

/* 16-bit payloads: over the indices every pattern turns up, NaN and infinity
 * bits among them (a bf16 all-gather must move them untouched). */
static inline uint16_t comm_bits16(int rank, size_t i) {
    return (uint16_t)(((unsigned)rank * 40503u + i * 2654435761u) >> 7);
}

/* Byte j of what rank r sends (gatherv, broadcast, point-to-point); never 0. */
static inline uint8_t comm_pattern(int r, size_t j) { return (uint8_t)(r * 31 + (int)(j % 251) + 1); }

/* The byte counts of the gatherv tests: rank 2 sends nothing, the others
 * base * (r + 1) + r (all nothing when base is 0). Returns the total. */
static inline size_t comm_gatherv_counts(size_t *counts, int size, size_t base) {
    size_t total = 0;
    for (int r = 0; r < size; r++) {
        counts[r] = r == 2 ? 0 : base * (size_t)(r + 1) + (base ? (size_t)r : 0);
        total += counts[r];
    }
    return total;
}

#endif
