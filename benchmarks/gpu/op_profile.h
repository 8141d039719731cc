/* Where a step's device time goes, op by op (bench_model's op_profile lines).
 * op_profile_on swaps the backend's ops table for one whose entries time each
 * call of the compute ops and pass it on: on a CUDA backend by a pair of
 * events around the call on its stream (device time, the host's issue time
 * not included, nothing waited for until op_profile_report), elsewhere by the
 * wall clock (the CPU ops are synchronous). GEMMs are kept apart by their
 * output's shape, so the q/k/v, o, gate/up, down and LM-head products and
 * their gradients show separately. Recorded steps pass through untimed: a
 * profiled decode runs op by op. One profile at a time; for benchmarks. */
#ifndef SRLM_BENCH_OP_PROFILE_H
#define SRLM_BENCH_OP_PROFILE_H

#include "backend/backend.h"

/* Start timing be's ops (a fresh profile). */
void op_profile_on(srlm_backend *be);
/* Wait for the timed ops, print a line with their sum and one per op (and
 * GEMM shape) sorted by time, "op_profile: <what>, <op>, ..." with
 * milliseconds per `per` (the steps or tokens timed: `what` names one), its
 * share of the sum, calls per `per` and time per call; then restore be's own
 * ops. */
void op_profile_report(srlm_backend *be, const char *what, int per);

#endif
