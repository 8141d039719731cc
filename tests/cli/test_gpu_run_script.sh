#!/usr/bin/env bash
# benchmarks/gpu/run.sh's own logic, without a GPU: stand-ins for nvidia-smi,
# compute-sanitizer and the programs of a prebuilt build folder (a bundle with a
# bundle-env.sh, as benchmarks/gpu/bundle.sh makes) let it run every step here.
# Checked: the bundle's environment reaches the programs; the kernel and model
# rows (bf16 also on a packed uneven batch) reach the table and RESULTS.md (a
# copy: SRLM_GPU_RESULTS), once with the section made and once appended to it;
# SRLM_GPU_BUDGET_S skips what no longer fits and names it
# while what ran is reported; SRLM_GPU_SANITIZE_TESTS sets the sanitizers' order;
# a sanitizer hazard, a failing test or end-to-end script and device sampling
# that draws other tokens than the host make it exit 1; the end-to-end script
# runs apart from the kernel tests, its lines shown and kept; with several GPUs
# the NCCL test runs under mpirun, one rank each (all ranks skipping is a skip); NCCL from Python's wheel is put on
# the loader's path where none is found; a bad budget exits 2.
set -u
src=${SRLM_SOURCE_DIR:?}
work=$SRLM_TMP/gpu_run_script
rm -rf "$work" && mkdir -p "$work/bin" "$work/build/tests" "$work/build/benchmarks/gpu" || exit 1
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

cat >"$work/bin/nvidia-smi" <<'EOF'
#!/bin/sh
# names a GPU for run.sh's check; lists none, so that real GPU tests would skip
case "$*" in *--query-gpu*) echo "NVIDIA H100 stand-in, 1 MiB, 0"; exit 0 ;; esac
# -L: FAKE_GPUS lines (run.sh runs the NCCL test on each GPU when there are several)
[ "$1" = -L ] && [ -n "${FAKE_GPUS:-}" ] && { seq "$FAKE_GPUS" | sed 's/^/GPU /'; exit 0; }
exit 9
EOF
cat >"$work/bin/compute-sanitizer" <<'EOF'
#!/bin/sh
# --help (run.sh asks for its options); a run sleeps, and finds a hazard in the
# program named by SANITIZER_HAZARD
[ "$1" = --help ] && { echo "--report-api-errors"; exit 0; }
for last; do :; done
sleep "${SANITIZER_SLEEP:-0}"
case "$last" in *"/${SANITIZER_HAZARD:-none}") echo "planted hazard"; exit 86 ;; esac
echo "clean"; exit 0
EOF
cat >"$work/bin/mpirun" <<'EOF'
#!/bin/sh
# says how it was called, then runs the program once
echo "stand-in mpirun $*"
for last; do :; done
exec "$last"
EOF
cat >"$work/bin/fakepy" <<'EOF'
#!/bin/sh
# a python without NCCL on the loader's path, whose nvidia-nccl wheel is in
# FAKE_NCCL_DIR (its lib folder); no torch
case "$2" in *nvidia.nccl*) echo "$FAKE_NCCL_DIR"; exit 0 ;; esac
exit 1
EOF
cat >"$work/bin/torchpy" <<'EOF'
#!/bin/sh
# a python with torch and transformers: peers.py times nothing, peer_model.py
# prints the training step's peer lines (FAKE_PEER_FAIL: it fails)
case "$1" in
    -c) exit 0 ;;
    benchmarks/gpu/peers.py) printf 'impl\tkernel\tdtype\tshape\tms\tvalue\tunit\n'; exit 0 ;;
    benchmarks/gpu/peer_model.py)
        [ -n "${FAKE_PEER_FAIL:-}" ] && { echo "stand-in peer_model.py: out of memory" >&2; exit 1; }
        for k in 1 4; do
            echo "train_step_torch: batch 4, seq 1024, micro-batches $k, precision autocast, mean 0.1 s, best 0.1 s, 1 tokens/s, $((k * 20 + 20)).00 TFLOP/s"
            echo "train_step_torch: batch 4, seq 1024, micro-batches $k, precision bf16, mean 0.1 s, best 0.1 s, 1 tokens/s, $((k * 40 + 10)).00 TFLOP/s"
        done ;;
esac
exit 0
EOF
mkdir -p "$work/wheel/lib" && : >"$work/wheel/lib/libnccl.so.2"
b=$work/build
cat >"$b/srlm" <<'EOF'
#!/bin/sh
exit 0
EOF
cat >"$b/benchmarks/gpu/bench_kernels" <<'EOF'
#!/bin/sh
# run.sh's TSV: impl kernel dtype shape ms value unit ref ref_value pct_of_ref
[ "${SRLM_FAKE_BUNDLE:-}" = yes ] || { echo "the bundle's environment did not arrive" >&2; exit 1; }
[ -n "${FAKE_KERNELS_FAIL:-}" ] && { echo "stand-in bench_kernels: an illegal address" >&2; exit 1; }
printf 'impl\tkernel\tdtype\tshape\tms\tvalue\tunit\tref\tref_value\tpct_of_ref\n'
printf 'srlm\tmemcpy_d2d\t-\t1GiB\t0.5\t2000.0\tGB/s\tmemcpy_GB/s\t2000.0\t100.0\n'
printf 'srlm\tlogprob_fwd\tbf16\t8x8\t0.25\t1900.0\tGB/s\tmemcpy_GB/s\t2000.0\t95.0\n'
EOF
cat >"$b/benchmarks/gpu/bench_model" <<'EOF'
#!/bin/sh
# bench_model's lines, one train_step per count of --micro-batches, one more for --fill below 1
dtype=float32 micro=1 fill=1
while [ $# -gt 0 ]; do
    [ "$1" = --dtype ] && dtype=$2
    [ "$1" = --micro-batches ] && micro=$2
    [ "$1" = --fill ] && fill=$2
    shift
done
for k in $(echo "$micro" | tr , ' '); do
    echo "train_step: batch 4, seq 1024, micro-batches $k, dtype $dtype, logits rows 4096, mean 0.$((1 + k)) s, best 0.1 s, 40000 tokens/s, $((20 * k)).00 TFLOP/s, MFU 2.0% of 989 TFLOP/s"
done
# without shared staging (SRLM_CUDA_STAGE_SHARE=0): slower decode op by op
if [ "${SRLM_CUDA_STAGE_SHARE:-1}" = 0 ]; then
    echo "decode: batch 1, dtype $dtype, 128 tokens after a 16-token prompt, 190.0 tokens/s, 2.20 GB of weights"
    echo "decode_op_by_op: batch 1, dtype $dtype, 128 tokens, 80.0 tokens/s, per token 3.0 ms issuing the forward and 0.5 ms waiting for the token; recorded steps 2.38x, the same tokens"
    exit 0
fi
[ "$fill" = 1 ] ||
    echo "train_step: batch 4, seq 1024, fill $fill (3072 real tokens, packed), micro-batches 1, dtype $dtype, logits rows 4096, mean 0.15 s, best 0.1 s, 20480 tokens/s, 30.00 TFLOP/s, MFU 3.0% of 989 TFLOP/s"
tps=100.0; [ "$dtype" = float32 ] && tps=50.0 # the fp32 decode slower, so that a ratio taking it shows
echo "decode: batch 1, dtype $dtype, 128 tokens after a 16-token prompt, $tps tokens/s, 2.20 GB of weights, bound 1363.6 tokens/s at 3000 GB/s (7.3%), per token 0.1 ms issuing the forward and 9.9 ms waiting for the token, 126 of 128 steps replayed as recorded"
echo "decode_op_by_op: batch 1, dtype $dtype, 128 tokens, 40.0 tokens/s, per token 20.0 ms issuing the forward and 5.0 ms waiting for the token; recorded steps 2.50x, ${FAKE_RECORDED:-the same} tokens"
for i in $(seq 1 20); do
    echo "op_profile: train step of 4 x 1024 tokens (1 micro-batch), dtype $dtype, per step, matmul 4096x$i, 1.0 ms (5.0%), 22.0 calls, 0.0455 ms per call"
done
echo "train_phases: batch 4, seq 1024, dtype $dtype, forward 20.5 ms (400.00 TFLOP/s), backward 45.0 ms (350.00 TFLOP/s), optimizer 15.5 ms"
echo "decode_gemm: gate/up, rows 1, dtype $dtype, W 5632 x 2048, 12.5 us per call (issued in 9.0 us), 1845 GB/s of weights (61.5% of 3000 GB/s)"
echo "prefill: 32 prompts of 66 .. 447 tokens (8123 in all), dtype $dtype, one a forward 20000 tokens/s (32 forwards), packed 50000 tokens/s (3 forwards, 2.50x), last-row logits max diff ${FAKE_PREFILL_DIFF:-0.0123} of max |logit| 2.5"
echo "decode_sampled: batch 32, dtype $dtype, 64 steps, temperature 0.8, top-p 0.9, host sampling 1000.0 tokens/s, backend sampling 1500.0 tokens/s (1.50x), ${FAKE_SAMPLED:-the same} tokens; op by op 600.0 tokens/s (recorded steps 2.50x), ${FAKE_SAMPLED_OP:-the same} tokens"
EOF
cat >"$b/bundle-env.sh" <<'EOF'
export SRLM_FAKE_BUNDLE=yes
EOF
echo "0123456789ab" >"$b/bundle-commit"
# the tests/gpu programs the sanitizers run; two gpu tests for ctest, one of
# which fails when FAKE_TEST_FAIL is set
for c in "$src"/tests/gpu/test_*.c; do
    printf '#!/bin/sh\nexit 0\n' >"$b/tests/$(basename "$c" .c)"
done
printf '#!/bin/sh\necho "NCCL test sees LD_LIBRARY_PATH=$LD_LIBRARY_PATH"\nexit ${FAKE_NCCL_RC:-0}\n' >"$b/tests/test_comm_nccl_gpu"
cat >"$b/tests/CTestTestfile.cmake" <<'EOF'
add_test(fake_gpu_pass "sh" "-c" "exit 0")
set_tests_properties(fake_gpu_pass PROPERTIES LABELS "gpu")
add_test(fake_gpu_maybe "sh" "-c" "test -z \"$FAKE_TEST_FAIL\"")
set_tests_properties(fake_gpu_maybe PROPERTIES LABELS "gpu")
add_test(test_attention_gpu "sh" "-c" "(test -z \"$FAKE_SM90_FAIL\" || test \"$SRLM_CUDA_ATTN_SM90\" = 0) && (test -z \"$FAKE_OVERLAP_FAIL\" || test \"$SRLM_CUDA_ATTN_OVERLAP\" = 0)")
set_tests_properties(test_attention_gpu PROPERTIES LABELS "gpu")
add_test(test_end_to_end_gpu "sh" "-c" "echo stand-in end-to-end check line, attention [$SRLM_CUDA_ATTN_SM90] overlap [$SRLM_CUDA_ATTN_OVERLAP]; test -z \"$FAKE_E2E_FAIL\"")
set_tests_properties(test_end_to_end_gpu PROPERTIES LABELS "gpu")
EOF
printf 'subdirs("tests")\n' >"$b/CTestTestfile.cmake"
chmod +x "$work/bin/"* "$b/srlm" "$b/benchmarks/gpu/"* "$b/tests/test_"*

run() { # LOG [VAR=value ...]: run.sh on the stand-ins
    local log=$1
    shift
    env PATH="$work/bin:$PATH" SRLM_GPU_BUILD="$b" SRLM_GPU_PREBUILT=1 SRLM_GPU_LOGS="$work/logs" \
        SRLM_GPU_QUICK=1 SRLM_GPU_PYTHON=false "$@" bash "$src/benchmarks/gpu/run.sh" >"$work/$log" 2>&1
}

# 1. everything runs and passes
run all.log
rc=$?
[ "$rc" = 0 ] || fail "a clean run exited $rc (expected 0)"
grep -q "all GPU checks passed" "$work/all.log" || fail "a clean run did not say all checks passed"
grep -q "bundle of commit 0123456789ab" "$work/all.log" || fail "the bundle's commit was not named"
grep -E -q "logprob_fwd[[:space:]]+bf16[[:space:]]+8x8[[:space:]]+0.25[[:space:]]+1900.0" "$work/all.log" || fail "the kernel row is not in the table"
grep -q "train_step (bfloat16, 4 micro-batches): 8.1% of the bf16 peak" "$work/all.log" ||
    fail "the bf16 model's share of the peak with 4 micro-batches is missing"
grep -q "train_step (float32, 1 micro-batches): 2.0% of the bf16 peak" "$work/all.log" ||
    fail "the fp32 model's share of the bf16 peak is missing"
grep -q "micro-batches 4, dtype float32" "$work/all.log" && fail "the fp32 model ran 4 micro-batches"
grep -q "^op_profile: train step of 4 x 1024 tokens (1 micro-batch), dtype bfloat16, per step, matmul 4096x13," "$work/all.log" ||
    fail "the op profile's 13 largest rows are not shown"
grep -q "^op_profile: .*dtype bfloat16, per step, matmul 4096x14," "$work/all.log" && fail "the op profile was not cut at 13 rows"
grep -q "train_step (bfloat16, 1 micro-batches, fill 0.75 packed): 3.0% of the bf16 peak" "$work/all.log" ||
    fail "the bf16 model's packed uneven batch is missing"
grep -q "fill .*dtype float32" "$work/all.log" && fail "the fp32 model ran an uneven batch"
n=$(grep -c "memcheck   clean" "$work/all.log")
[ "$n" = "$(ls "$src"/tests/gpu/test_*.c | grep -v -c test_comm_nccl_gpu)" ] ||
    fail "memcheck ran on $n tests, not on every tests/gpu program but the NCCL one"
grep -q "test_comm_nccl_gpu *memcheck" "$work/all.log" && fail "the sanitizers ran on the NCCL test"
# the end-to-end script: not among the kernel tests, then on its own, its lines kept
grep -q "test_end_to_end_gpu" "$work/logs/ctest.log" && fail "the end-to-end script ran with the kernel tests"
grep -q "stand-in end-to-end check line" "$work/all.log" && grep -q "stand-in end-to-end check line" "$work/logs/end_to_end.log" ||
    fail "the end-to-end script's own lines are not in the output and end_to_end.log"

# 1b. the rows for RESULTS.md: a new section, then appended to it
printf '# Results\n\n## Other\n\ntext\n' >"$work/results.md"
for pass in 1 2; do
    run results$pass.log SRLM_GPU_QUICK=0 SRLM_GPU_RESULTS="$work/results.md" SRLM_GPU_SANITIZE_TESTS=test_rope_gpu ||
        fail "a clean run writing RESULTS.md (pass $pass) failed"
done
[ "$(grep -c '^## GPU kernels' "$work/results.md")" = 1 ] || fail "RESULTS.md: not exactly one GPU kernels section"
grep -q "decode op by op (bf16, batch 1): 40.0 tokens/s with shared staging, 80.0 without: 0.50x" "$work/results1.log" ||
    fail "the decode ratio with and without shared staging is missing or wrong"
grep -q "^without sharing: decode_op_by_op: batch 1, dtype bfloat16" "$work/results1.log" ||
    fail "the decode without sharing is not shown"
grep -q "without sharing" "$work/all.log" && fail "a quick run timed decode without sharing"
grep -q "^| 20[0-9-]* | NVIDIA H100 stand-in | 0123456789ab | logprob_fwd | bf16 | 8x8 | 0.25 | 1900.0 | not measured | GB/s | 95.0% |" \
    "$work/results.md" || fail "RESULTS.md: the kernel row is missing or malformed"
grep -q "| model train step (fwd+bwd+AdamW) | bf16 | 1.1B, 4 micro-batches of 4 x 1024 | 500.0 | 80.00 | - | TFLOP/s | 2.0% of the bf16 peak |" \
    "$work/results.md" || fail "RESULTS.md: the bf16 4-micro-batch model row is missing or malformed"
grep -q "| model train step (fwd+bwd+AdamW) | bf16 | 1.1B, batch 4 x 1024, lengths at 0.75 of it, packed | 150.0 | 30.00 | - | TFLOP/s | 3.0% of the bf16 peak |" \
    "$work/results.md" || fail "RESULTS.md: the bf16 packed uneven-batch row is missing or malformed"
grep -q "| model train step (fwd+bwd+AdamW) | fp32 | 1.1B, batch 4 x 1024 | 200.0 |" "$work/results.md" ||
    fail "RESULTS.md: the fp32 model row is missing or malformed"
grep -q "| model decode, batch 1 (recorded steps) | bf16 | 1.1B, 128 tokens | - | 100.0 | - | tokens/s | 7.3% of the weight-read bound |" \
    "$work/results.md" || fail "RESULTS.md: the decode row is missing or malformed"
grep -q "| model decode, batch 1, op by op | bf16 | 1.1B, 128 tokens | - | 40.0 | - | tokens/s | recorded steps 2.50x this, the same tokens |" \
    "$work/results.md" || fail "RESULTS.md: the op-by-op decode row is missing or malformed"
[ "$(grep -c '| logprob_fwd |' "$work/results.md")" = 2 ] || fail "RESULTS.md: the second run's rows were not appended"
grep -q "| model train step by phase (forward / backward TFLOP/s; optimizer 15.5 ms), the device waited for after each | bf16 | 1.1B, batch 4 x 1024 | 81.0 | 400.00 / 350.00 | - | TFLOP/s | - |" \
    "$work/results.md" || fail "RESULTS.md: the phase row is missing or malformed"
grep -q "| model decode GEMM (gate/up), issued in 9.0 us | bf16 | 1 rows x W 5632 x 2048 | 0.0125 | 1845 | - | GB/s | 61.5% of copy |" \
    "$work/results.md" || fail "RESULTS.md: the decode GEMM row is missing or malformed"
grep -q "| model decode, batch 32, sampled on the device | bf16 | 1.1B, 64 steps | - | 1500.0 | - | tokens/s | 1.50x sampling on the host (1000.0 tokens/s) |" \
    "$work/results.md" || fail "RESULTS.md: the sampled decode row is missing or malformed"
grep -q "| model prefill, prompts packed (srlm_llama_prefill) | bf16 | 1.1B, 32 prompts of 66 .. 447 tokens | - | 50000 | - | tokens/s | 2.50x one prompt a forward (20000 tokens/s); logits max diff 0.0123 of max |logit| 2.5 |" \
    "$work/results.md" || fail "RESULTS.md: the prefill row is missing or malformed"
tail -n 1 "$work/results.md" | grep -q "model decode" || fail "RESULTS.md: the rows are not at the end of their section"

# 1c. bench_kernels fails: the whole model's rows still reach RESULTS.md
printf '# Results\n' >"$work/results-nokernels.md"
run nokernels.log SRLM_GPU_QUICK=0 SRLM_GPU_RESULTS="$work/results-nokernels.md" SRLM_GPU_SANITIZE_TESTS=test_rope_gpu \
    FAKE_KERNELS_FAIL=1
rc=$?
[ "$rc" = 1 ] || fail "a run whose bench_kernels failed exited $rc (expected 1)"
grep -q "FAILED: bench_kernels" "$work/nokernels.log" || fail "the failed bench_kernels was not reported"
grep -q "| model train step (fwd+bwd+AdamW) | bf16 |" "$work/results-nokernels.md" ||
    fail "RESULTS.md: the model rows were dropped because bench_kernels failed"

# 1d. the training step's PyTorch peer (peer_model.py): ratios in the log, the
# autocast peer in the bf16 rows of whole batches; a failed peer fails nothing
printf '# Results\n' >"$work/results-peer.md"
run peer.log SRLM_GPU_QUICK=0 SRLM_GPU_RESULTS="$work/results-peer.md" SRLM_GPU_SANITIZE_TESTS=test_rope_gpu \
    SRLM_GPU_PYTHON="$work/bin/torchpy" || fail "a clean run with the training step's peer failed"
grep -q "train_step srlm/torch (bf16, 1 micro-batches): 0.50x PyTorch autocast (fp32 master weights), 0.40x PyTorch bf16 parameters" \
    "$work/peer.log" || fail "the 1-micro-batch ratio to the peer is missing or wrong"
grep -q "train_step srlm/torch (bf16, 4 micro-batches): 0.80x PyTorch autocast (fp32 master weights), 0.47x PyTorch bf16 parameters" \
    "$work/peer.log" || fail "the 4-micro-batch ratio to the peer is missing or wrong"
grep -q "| model train step (fwd+bwd+AdamW) | bf16 | 1.1B, 4 micro-batches of 4 x 1024 | 500.0 | 80.00 | 100.00 | TFLOP/s | 0.80 (MFU 2.0% of the bf16 peak) |" \
    "$work/results-peer.md" || fail "RESULTS.md: the bf16 row does not carry its peer"
grep -q "| bf16 | 1.1B, batch 4 x 1024, lengths at 0.75 of it, packed | 150.0 | 30.00 | - | TFLOP/s | 3.0% of the bf16 peak |" \
    "$work/results-peer.md" || fail "RESULTS.md: the packed row (no peer for it) changed"
grep -q "| fp32 | 1.1B, batch 4 x 1024 | 200.0 | 20.00 | - |" "$work/results-peer.md" ||
    fail "RESULTS.md: the fp32 row got a bf16 peer"
run peerfail.log SRLM_GPU_SANITIZE_TESTS=test_rope_gpu SRLM_GPU_QUICK=0 SRLM_GPU_NO_RESULTS=1 \
    SRLM_GPU_PYTHON="$work/bin/torchpy" FAKE_PEER_FAIL=1 || fail "a failed peer_model.py failed the run"
grep -q "training-step peer not measured: peer_model.py failed" "$work/peerfail.log" ||
    fail "a failed peer_model.py was not reported"

# 2. a budget: the sanitizer runs (2 s each) that no longer fit are skipped and named
run budget.log SRLM_GPU_BUDGET_S=30 SANITIZER_SLEEP=2 \
    SRLM_GPU_SANITIZE_TESTS="test_rope_gpu test_adamw_gpu test_swiglu_gpu test_rmsnorm_gpu test_embedding_gpu"
rc=$?
[ "$rc" = 0 ] || fail "a budgeted run exited $rc (expected 0: skipped is not failed)"
grep -q "^SKIPPED (SRLM_GPU_BUDGET_S=30 spent):.*racecheck test_rmsnorm_gpu" "$work/budget.log" ||
    fail "the runs past the budget were not named as skipped"
grep -q "the GPU checks that ran passed (some were skipped" "$work/budget.log" ||
    fail "a budgeted run did not say that some checks were skipped"
first=$(grep -m1 -E "^test_[a-z_]+ +memcheck" "$work/budget.log" | cut -d' ' -f1)
[ "$first" = test_rope_gpu ] || fail "the sanitizers began with '$first', not SRLM_GPU_SANITIZE_TESTS's first"
grep -q "memcheck test_swiglu_gpu" "$work/budget.log" && grep -q "^test_swiglu_gpu" "$work/budget.log" &&
    fail "test_swiglu_gpu was both run and skipped"
grep -q "logprob_fwd" "$work/budget.log" || fail "the budget skipped the kernel benchmarks, which fit"

# 2b. NAME:TOOL runs that tool only
run tools.log SRLM_GPU_SANITIZE_TESTS="test_rope_gpu:memcheck test_adamw_gpu"
grep -q "^test_rope_gpu *memcheck *clean" "$work/tools.log" || fail "test_rope_gpu:memcheck did not run memcheck"
grep -q "^test_rope_gpu *racecheck" "$work/tools.log" && fail "test_rope_gpu:memcheck ran racecheck too"
grep -q "^test_adamw_gpu *racecheck *clean" "$work/tools.log" || fail "test_adamw_gpu (no tool named) did not run racecheck"

# 3. failures: a hazard, a failing test, an unknown sanitizer test
run fail.log SANITIZER_HAZARD=test_rope_gpu FAKE_TEST_FAIL=1 SRLM_GPU_SANITIZE_TESTS="test_rope_gpu test_nope" \
    FAKE_SAMPLED=DIFFERENT FAKE_RECORDED=DIFFERENT FAKE_E2E_FAIL=1
rc=$?
[ "$rc" = 1 ] || fail "a run with a hazard and a failing test exited $rc (expected 1)"
grep -q "test_rope_gpu *memcheck *HAZARDS FOUND" "$work/fail.log" || fail "the hazard was not reported"
grep -q "FAILED: ctest -L gpu" "$work/fail.log" || fail "the failing gpu test was not reported"
grep -q "FAILED: test_end_to_end_gpu" "$work/fail.log" || fail "the failing end-to-end script was not reported"
grep -q "test_nope, which is not a tests/gpu/test_\*.c program" "$work/fail.log" ||
    fail "an unknown test in SRLM_GPU_SANITIZE_TESTS was not reported"
grep -q "FAILED: bench_model (bfloat16): sampling on the device drew other tokens than on the host" "$work/fail.log" ||
    fail "device sampling that drew other tokens was not reported"
grep -q "FAILED: bench_model (bfloat16): recorded decode steps drew other tokens than the same steps op by op" "$work/fail.log" ||
    fail "recorded decode steps that drew other tokens were not reported"
grep -q "recorded decode steps of the sampled batch" "$work/fail.log" &&
    fail "the sampled batch's recorded steps were reported though they drew the same tokens"
grep -q "packed prefill gave other" "$work/fail.log" && fail "a packed prefill within bounds was reported"
# packed prefill's logits far from one prompt a forward (or NaN): reported
for d in 0.5 nan; do
    run prefill_$d.log FAKE_PREFILL_DIFF=$d
    grep -q "FAILED: bench_model (bfloat16): packed prefill gave other last-row logits than one prompt a forward" \
        "$work/prefill_$d.log" || fail "packed prefill logits $d away from one a forward were not reported"
done
# the sampled batch's recorded steps drawing other tokens than op by op: that alone is reported
run sampled_op.log FAKE_SAMPLED_OP=DIFFERENT
grep -q "FAILED: bench_model (bfloat16): recorded decode steps of the sampled batch drew other tokens than op by op" \
    "$work/sampled_op.log" || fail "recorded steps of the sampled batch that drew other tokens were not reported"
grep -q "sampling on the device drew other tokens" "$work/sampled_op.log" &&
    fail "op-by-op tokens that differ were reported as device sampling that differs"

# 3b. the wgmma attention kernels failing their test, which passes without them:
# the rest of the run keeps them off, the failure is reported, the rows say so
printf '# Results\n' >"$work/results_sm90.md"
run sm90.log FAKE_SM90_FAIL=1 SRLM_GPU_QUICK=0 SRLM_GPU_RESULTS="$work/results_sm90.md" SRLM_GPU_SANITIZE_TESTS=test_rope_gpu
rc=$?
[ "$rc" = 1 ] || fail "a run whose wgmma attention kernels failed exited $rc (expected 1)"
grep -q "FAILED: test_attention_gpu with the wgmma kernels (it passes with SRLM_CUDA_ATTN_SM90=0" "$work/sm90.log" ||
    fail "the failing wgmma kernels were not reported"
grep -q "stand-in end-to-end check line, attention \[0\]" "$work/sm90.log" ||
    fail "the end-to-end script did not run with the wgmma kernels off"
grep -q "| 0123456789ab, SRLM_CUDA_ATTN_SM90=0 |" "$work/results_sm90.md" ||
    fail "the RESULTS.md rows do not say the wgmma kernels were off"
grep -q "attention \[\] overlap \[\]" "$work/all.log" || fail "a clean run turned the wgmma kernels off"

# 3c. only the overlapping wgmma forward (off by default) failing: reported, and
# the rest of the run keeps the default wgmma kernels, rows unmarked
printf '# Results\n' >"$work/results_overlap.md"
run overlap.log FAKE_OVERLAP_FAIL=1 SRLM_GPU_QUICK=0 SRLM_GPU_RESULTS="$work/results_overlap.md" \
    SRLM_GPU_SANITIZE_TESTS=test_rope_gpu
rc=$?
[ "$rc" = 1 ] || fail "a run whose overlapping forward failed exited $rc (expected 1)"
grep -q "FAILED: test_attention_gpu's overlapping wgmma forward (the rest passes with SRLM_CUDA_ATTN_OVERLAP=0)" \
    "$work/overlap.log" || fail "the failing overlapping forward was not reported"
grep -q "stand-in end-to-end check line, attention \[\] overlap \[0\]" "$work/overlap.log" ||
    fail "the end-to-end script did not run with the default wgmma kernels and the overlap left out"
grep -q "SRLM_CUDA_ATTN_SM90=0" "$work/results_overlap.md" &&
    fail "the rows say the wgmma kernels were off when only the overlapping forward failed"

# 4. two GPUs: the NCCL test once on each under mpirun; NCCL found through Python's wheel
run nccl.log FAKE_GPUS=2 SRLM_GPU_PYTHON="$work/bin/fakepy" FAKE_NCCL_DIR="$work/wheel/lib" SRLM_GPU_MODEL=0
rc=$?
[ "$rc" = 0 ] || fail "a two-GPU run exited $rc (expected 0)"
grep -q "^stand-in mpirun -np 2 .*/tests/test_comm_nccl_gpu$" "$work/nccl.log" ||
    fail "the NCCL test was not run under mpirun -np 2"
grep -q "^NCCL: $work/wheel/lib/libnccl.so.2 (from Python's nvidia-nccl" "$work/nccl.log" ||
    fail "NCCL from Python's wheel was not named"
grep -E -q "^NCCL test sees LD_LIBRARY_PATH=(.*:)?$work/wheel/lib$" "$work/nccl.log" ||
    fail "the wheel's NCCL folder did not reach the programs' LD_LIBRARY_PATH"
grep -q "stand-in mpirun" "$work/all.log" && fail "one GPU, yet the NCCL test ran under mpirun"
# every rank skipping (77: no NCCL) is a skip; CUDA_VISIBLE_DEVICES limits the GPUs counted
run nccl_skip.log FAKE_GPUS=2 FAKE_NCCL_RC=77 SRLM_GPU_MODEL=0
rc=$?
[ "$rc" = 0 ] && grep -q "NCCL across 2 GPUs not checked: the test skipped itself" "$work/nccl_skip.log" ||
    fail "ranks that all skipped: exit $rc, or not named as a skip"
run nccl_visible.log FAKE_GPUS=2 CUDA_VISIBLE_DEVICES=1 SRLM_GPU_MODEL=0
grep -q "stand-in mpirun" "$work/nccl_visible.log" && fail "one visible GPU of two, yet the NCCL test ran under mpirun"

# 5. a bad budget
run bad.log SRLM_GPU_BUDGET_S=8m
rc=$?
[ "$rc" = 2 ] || fail "SRLM_GPU_BUDGET_S=8m exited $rc (expected 2)"
grep -q "SRLM_GPU_BUDGET_S=8m: expected whole seconds" "$work/bad.log" || fail "the bad budget's message is missing"

if [ "$fails" -gt 0 ]; then
    echo "logs: $work"
    exit 1
fi
echo "run.sh: clean run, budget, failures and a bad budget behave as documented"
