#!/usr/bin/env bash
# One command for a machine with an NVIDIA GPU (benchmarks/gpu/README.md):
#   1. configure and build srlm with CUDA (Release) into build-gpu
#   2. run every gpu-labelled test (ctest -L gpu; the end-to-end script on its own, verbose);
#      when test_attention_gpu fails but passes without the overlapping wgmma
#      forward (SRLM_CUDA_ATTN_OVERLAP=0), or else with the wgmma kernels off
#      (SRLM_CUDA_ATTN_SM90=0), the rest of the run leaves them out and says so
#   3. time the kernels (bench_kernels) and their PyTorch peers (peers.py)
#   4. time the whole model (bench_model): training-step MFU, phases and device
#      time op by op (op_profile), batch-1
#      decode (recorded steps, then op by op: the same tokens both ways) and its
#      products; decode op by op again without shared staging
#      (SRLM_CUDA_STAGE_SHARE=0); the bf16 step's PyTorch peer (peer_model.py)
#   5. print one table and append dated rows naming the GPU to
#      benchmarks/RESULTS.md under "## GPU kernels"
#   6. run compute-sanitizer memcheck and racecheck on each kernel test
#      (tests/gpu); last because it is by far the slowest step
# Without a GPU it says so and exits 2; a failed test, sanitizer run or kernel
# call makes it exit 1 after everything else has run.
#
# Environment: SRLM_GPU_BUILD (build folder, default build-gpu), SRLM_GPU_LOGS
# (logs and TSVs, default $SRLM_GPU_BUILD/gpu-logs), JOBS (build parallelism),
# SRLM_GPU_QUICK=1 (fewer repeats: a smoke run, not for RESULTS.md numbers),
# SRLM_GPU_NO_RESULTS=1 (do not touch RESULTS.md), SRLM_GPU_RESULTS (another
# file to append the rows to), SRLM_GPU_PREBUILT=1 (use
# the build folder as it is: built elsewhere, e.g. on a login node with the
# development packages, for a compute node without them), SRLM_GPU_PYTHON (the
# python that has torch, default python3), SRLM_GPU_SANITIZE_TIMEOUT and
# SRLM_GPU_MODEL_TIMEOUT (seconds per sanitizer run, default 1800, and for
# each benchmark program, default 1200), SRLM_GPU_COMMIT (the commit named in RESULTS.md
# where the tree is not a git checkout), SRLM_GPU_SANITIZE_TESTS (space-separated
# test names, e.g. "test_attention_gpu": run the sanitizers on these only, in
# this order; NAME:memcheck or NAME:racecheck runs that tool only), SRLM_GPU_MODEL=0 (skip the whole-model benchmark of step 4),
# SRLM_GPU_BUDGET_S (seconds for the whole script, e.g. a lease's: every
# program's time limit is cut to what is left, each sanitizer run gets an equal
# share of what the steps before left but at least 60 s, and a step with under
# 20 s left is skipped and named at the end).
set -u -o pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root" || exit 2
build=${SRLM_GPU_BUILD:-build-gpu}
logs=${SRLM_GPU_LOGS:-$build/gpu-logs}
jobs=${JOBS:-$(nproc 2>/dev/null || echo 4)}
quick=()
[ "${SRLM_GPU_QUICK:-0}" = 1 ] && quick=(--quick)
results=${SRLM_GPU_RESULTS:-benchmarks/RESULTS.md}
python=${SRLM_GPU_PYTHON:-python3}
sanitize_timeout=${SRLM_GPU_SANITIZE_TIMEOUT:-1800}
model_timeout=${SRLM_GPU_MODEL_TIMEOUT:-1200}

die() {
    echo "run.sh: $*" >&2
    exit 2
}
t_start=$(date +%s)
step() { printf '\n== %s (at %ds)\n' "$*" $(($(date +%s) - t_start)); }
budget=${SRLM_GPU_BUDGET_S:-0}
case "$budget" in '' | *[!0-9]*) die "SRLM_GPU_BUDGET_S=$budget: expected whole seconds (0: no limit)" ;; esac
skipped=()
# limit SECONDS: SECONDS, or less where SRLM_GPU_BUDGET_S leaves less (5 s kept
# for the table); 0 when under 20 s would be left
limit() {
    local want=$1 left
    [ "$budget" = 0 ] && { echo "$want"; return; }
    left=$((t_start + budget - $(date +%s) - 5))
    [ "$left" -lt "$want" ] && want=$left
    [ "$want" -lt 20 ] && want=0
    echo "$want"
}

# ---- 0. is there a GPU? ----
if ! command -v nvidia-smi >/dev/null 2>&1; then
    die "no GPU: nvidia-smi is not installed, so there is no NVIDIA driver here; run this on a machine with an NVIDIA GPU"
fi
gpu=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -n 1)
if [ -z "$gpu" ]; then
    die "no GPU: nvidia-smi lists no device (driver not loaded, or no GPU visible to this container)"
fi
gpu_name=${gpu%%,*}
echo "GPU: $gpu"
mkdir -p "$logs" || die "cannot create $logs"

failed=()

# ---- 1. build ----
if [ "${SRLM_GPU_PREBUILT:-0}" = 1 ]; then
    step "1. build: prebuilt ($build, SRLM_GPU_PREBUILT=1)"
    # a folder from benchmarks/gpu/bundle.sh brings its libraries and Open MPI
    if [ -f "$build/bundle-env.sh" ]; then
        . "$build/bundle-env.sh" "$root" || die "$build/bundle-env.sh failed"
        echo "bundle of commit $(cat "$build/bundle-commit" 2>/dev/null || echo unknown) (benchmarks/gpu/bundle.sh)"
        [ -n "${SRLM_GPU_COMMIT:-}" ] || SRLM_GPU_COMMIT=$(cat "$build/bundle-commit" 2>/dev/null || echo unknown)
    fi
    for f in srlm benchmarks/gpu/bench_kernels benchmarks/gpu/bench_model tests/CTestTestfile.cmake; do
        [ -e "$build/$f" ] || die "SRLM_GPU_PREBUILT=1 but $build/$f is missing: build with -DSRLM_CUDA=ON into $build first"
    done
    echo "using $build as built"
else
    step "1. configure and build ($build, Release, SRLM_CUDA=ON)"
    cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DSRLM_CUDA=ON >"$logs/configure.log" 2>&1 ||
        { tail -n 30 "$logs/configure.log" >&2
          die "configure failed ($logs/configure.log): srlm also needs libyaml, libcjson, sentencepiece, OpenBLAS and MPI development packages"; }
    cmake --build "$build" -j "$jobs" >"$logs/build.log" 2>&1 ||
        { grep -E "error|Error" "$logs/build.log" | head -n 30 >&2; die "build failed ($logs/build.log)"; }
    echo "built"
fi

"$build/srlm" --version 2>&1 | sed 's/^/  /' # what the programs run with (MPI, BLAS, CUDA)

# NCCL is opened at run time (core/dynlib.h). Where the loader finds none (no
# system NCCL on its path), PyTorch's wheel often brings one (nvidia-nccl): put
# its folder last on the loader's path.
if ! $python -c "import ctypes; ctypes.CDLL('libnccl.so.2')" >/dev/null 2>&1; then
    nccl_dir=$($python -c "import os, nvidia.nccl; print(os.path.join(list(nvidia.nccl.__path__)[0], 'lib'))" \
               2>/dev/null)
    if [ -n "$nccl_dir" ] && [ -e "$nccl_dir/libnccl.so.2" ]; then
        export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$nccl_dir"
        echo "NCCL: $nccl_dir/libnccl.so.2 (from Python's nvidia-nccl; the loader found none)"
    else
        echo "NCCL: none found (test_comm_nccl_gpu will say so)"
    fi
fi

# ---- 2. gpu-labelled tests ----
# Under a budget the kernel tests and the end-to-end script get at most a third
# of it each: a test that hangs must leave time for the benchmarks.
want=3600
[ "$budget" != 0 ] && want=$((budget / 3 > 60 ? budget / 3 : 60))
e2e='^test_end_to_end_gpu$'
step "2. ctest -L gpu (the end-to-end script next, on its own)"
t=$(limit "$want")
if [ "$t" = 0 ]; then
    skipped+=("ctest -L gpu")
elif ! timeout -k 10 "$t" ctest --test-dir "$build" -L gpu -E "$e2e" --no-tests=error --output-on-failure 2>&1 |
        tee "$logs/ctest.log"; then
    failed+=("ctest -L gpu")
fi
# the passing tests' own output (tolerances met, numbers) is only in ctest's log
cp "$build/Testing/Temporary/LastTest.log" "$logs/ctest-full.log" 2>/dev/null
# The wgmma attention kernels (sm_90a) are the newest code on the GPU: when
# test_attention_gpu fails, it runs again with them off; if it passes so, the
# rest of this run uses the mma.sync kernels (SRLM_CUDA_ATTN_SM90=0), so that
# the end-to-end checks and the model's timings still mean something, and the
# rows for RESULTS.md say so.
sm90_off=""
if grep -Eq '[0-9]+ - test_attention_gpu \(' "$logs/ctest.log" 2>/dev/null && [ "${SRLM_CUDA_ATTN_SM90:-}" != 0 ]; then
    step "2a. test_attention_gpu failed: again without the overlapping forward, then without the wgmma kernels"
    # the wgmma building blocks one at a time (test_wgmma_gpu): which one is wrong
    echo "test_wgmma_gpu said:"
    sed -n '/Testing: test_wgmma_gpu/,/^Test \(Passed\|Failed\)/p' "$logs/ctest-full.log" 2>/dev/null |
        grep -E 'A tile|SKIPPED|checks passed' | head -n 24
    # the forward that overlaps its products is off by default, and its pass
    # in the test is skipped with SRLM_CUDA_ATTN_OVERLAP=0: if that alone
    # fails, the default kernels stay on for the rest of the run
    t=$(limit 300)
    if [ "$t" != 0 ] && SRLM_CUDA_ATTN_OVERLAP=0 timeout -k 10 "$t" ctest --test-dir "$build" \
            -R '^test_attention_gpu$' --no-tests=error --output-on-failure >"$logs/attention_nooverlap.log" 2>&1; then
        export SRLM_CUDA_ATTN_OVERLAP=0
        failed+=("test_attention_gpu's overlapping wgmma forward (the rest passes with SRLM_CUDA_ATTN_OVERLAP=0)")
        echo "test_attention_gpu passes without the overlapping forward (SRLM_CUDA_ATTN_OVERLAP=0): the rest of" \
             "this run leaves it out"
    else
        t=$(limit 300)
        if [ "$t" != 0 ] && SRLM_CUDA_ATTN_SM90=0 timeout -k 10 "$t" ctest --test-dir "$build" \
                -R '^test_attention_gpu$' --no-tests=error --output-on-failure >"$logs/attention_mma.log" 2>&1; then
            export SRLM_CUDA_ATTN_SM90=0
            sm90_off="SRLM_CUDA_ATTN_SM90=0"
            why="it passes with SRLM_CUDA_ATTN_SM90=0, which the rest of this run used"
            failed+=("test_attention_gpu with the wgmma kernels ($why)")
            echo "test_attention_gpu passes with the mma.sync kernels: the rest of this run uses them" \
                 "(SRLM_CUDA_ATTN_SM90=0)"
        else
            tail -n 20 "$logs/attention_mma.log" 2>/dev/null
            echo "test_attention_gpu fails with the mma.sync kernels too ($logs/attention_mma.log)"
        fi
    fi
fi
# The end-to-end commands (sft, dpo, score, generate, srlm run; fp32, bf16, two
# ranks) print a line per check as they go: verbose, so a time limit that
# stops them keeps what they printed and names where they were.
step "2b. ctest -R end_to_end -V (tests/gpu/test_end_to_end_gpu.sh)"
t=$(limit "$want")
if [ "$t" = 0 ]; then
    skipped+=("test_end_to_end_gpu")
elif ! timeout -k 10 "$t" ctest --test-dir "$build" -R "$e2e" --no-tests=error -V 2>&1 | tee "$logs/end_to_end.log"; then
    failed+=("test_end_to_end_gpu")
fi
# ctest ran the NCCL test as one rank; with several GPUs, one rank on each (the
# GPUs this process may use: CUDA_VISIBLE_DEVICES where it is set, empty for none)
if [ -n "${CUDA_VISIBLE_DEVICES+set}" ]; then
    ngpu=$(echo "$CUDA_VISIBLE_DEVICES" | tr ',' '\n' | grep -c .)
else
    ngpu=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')
fi
if [ "$ngpu" -gt 1 ]; then
    launcher=$(command -v mpirun || command -v mpiexec)
    t=$(limit 600)
    if [ -z "$launcher" ]; then
        echo "NCCL across $ngpu GPUs not checked: no mpirun here (a bundle runs single ranks only)"
    elif [ "$t" = 0 ]; then
        skipped+=("test_comm_nccl_gpu on $ngpu GPUs")
    else
        OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 timeout -k 10 "$t" "$launcher" -np "$ngpu" \
            "$build/tests/test_comm_nccl_gpu" >"$logs/comm_nccl_${ngpu}gpus.log" 2>&1
        rc=$?
        cat "$logs/comm_nccl_${ngpu}gpus.log"
        case $rc in
            0) ;;
            77) echo "NCCL across $ngpu GPUs not checked: the test skipped itself (above: no NCCL, or no GPU)" ;;
            *) failed+=("test_comm_nccl_gpu on $ngpu GPUs (exit $rc)") ;;
        esac
    fi
fi

# ---- 3. benchmarks ----
step "3. benchmarks: bench_kernels and the PyTorch peers"
srlm_tsv=$logs/srlm.tsv
torch_tsv=$logs/torch.tsv
: >"$torch_tsv"
t=$(limit "$model_timeout")
: >"$srlm_tsv"
if [ "$t" = 0 ]; then
    skipped+=("bench_kernels")
elif ! timeout -k 10 "$t" "$build/benchmarks/gpu/bench_kernels" "${quick[@]}" >"$srlm_tsv" 2>"$logs/bench_kernels.err"; then
    cat "$logs/bench_kernels.err" >&2
    failed+=("bench_kernels")
fi
peer_note=""
t=$(limit "$model_timeout")
if [ "$t" = 0 ]; then
    skipped+=("peers.py")
    peer_note="peer not measured: SRLM_GPU_BUDGET_S spent"
elif $python -c "import torch" >/dev/null 2>&1; then
    if ! timeout -k 10 "$t" $python benchmarks/gpu/peers.py "${quick[@]}" >"$torch_tsv" 2>"$logs/peers.err"; then
        cat "$logs/peers.err" >&2
        peer_note="peer not measured: peers.py failed ($logs/peers.err)"
    fi
else
    peer_note="peer not measured: no torch"
fi
[ -n "$peer_note" ] && echo "$peer_note"

# ---- 4. the whole model through the ops table (the code srlm sft / generate run) ----
step "4. whole model: training-step MFU and batch-1 decode (bench_model, ~1B Llama)"
model_txt=$logs/bench_model.txt
: >"$model_txt"
copy_gbs=$(awk -F'\t' '$8 == "memcpy_GB/s" { print $9; exit }' "$srlm_tsv")
# Peaks from the data sheets (dense). Two runs: backend.dtype float32 (GEMMs fp32
# without TF32, MFU against the fp32 non-tensor-core peak) and bfloat16 (tensor
# cores, MFU against the bf16 peak: the issue's >= 50% target).
case "$gpu_name" in
    *H100*PCIe*) fp32_peak=51; bf16_peak=756 ;;
    *H100*|*H200*) fp32_peak=67; bf16_peak=989 ;;
    *A100*) fp32_peak=19.5; bf16_peak=312 ;;
    *) fp32_peak=0; bf16_peak=0 ;;
esac
fp32_peak=${SRLM_GPU_FP32_TFLOPS:-$fp32_peak}
for dtype in ${SRLM_GPU_MODEL_DTYPES:-bfloat16 float32}; do
    peak=$fp32_peak; [ "$dtype" = bfloat16 ] && peak=$bf16_peak
    # bf16 also with 4 micro-batches a step: the optimizer's fixed cost spread
    # as at a real batch size (bench_model.c)
    micro=1; [ "$dtype" = bfloat16 ] && micro=1,4
    # bf16 also with uneven lengths (mean 75% of 1024): the packed batches SFT and DPO
    # train on, attention masked to each packed sequence
    fill=1; [ "$dtype" = bfloat16 ] && fill=0.75
    model_args=(--backend cuda --dtype "$dtype" --config 1b --batch 4 --seq 1024 --micro-batches "$micro"
                --fill "$fill" --steps 10 --decode 128 --peak-tflops "$peak")
    [ -n "$copy_gbs" ] && model_args+=(--mem-gbs "$copy_gbs")
    [ ${#quick[@]} -gt 0 ] && model_args=(--backend cuda --dtype "$dtype" --config tiny --micro-batches "$micro"
                                          --fill "$fill" --steps 3 --decode 16)
    t=$(limit "$model_timeout")
    # the 1.1B run writes its random checkpoint (4.4 GB) first: under 90 s it
    # cannot finish, so the time goes to the steps after it
    [ ${#quick[@]} = 0 ] && [ "$t" -lt 90 ] && t=0
    if [ "${SRLM_GPU_MODEL:-1}" = 0 ]; then
        echo "skipped (SRLM_GPU_MODEL=0)"
        break
    elif [ "$t" = 0 ]; then
        skipped+=("bench_model ($dtype)")
    elif timeout -k 10 "$t" "$build/benchmarks/gpu/bench_model" "${model_args[@]}" >>"$model_txt" \
            2>"$logs/bench_model_$dtype.err"; then
        grep "dtype $dtype" "$model_txt" | grep -v '^op_profile:'
        # where the device time goes, op by op: the 12 largest of each profile
        # here (all of them in bench_model.txt)
        grep "^op_profile: .*dtype $dtype," "$model_txt" | awk -F', ' '{ k = $1 FS $2 FS $3; if (++n[k] <= 13) print }'
        grep "^decode_sampled:.*dtype $dtype,.*backend sampling [0-9.]* tokens/s ([0-9.]*x), DIFFERENT" "$model_txt" >/dev/null &&
            failed+=("bench_model ($dtype): sampling on the device drew other tokens than on the host")
        grep "^decode_sampled:.*dtype $dtype,.*(recorded steps [0-9.]*x), DIFFERENT" "$model_txt" >/dev/null &&
            failed+=("bench_model ($dtype): recorded decode steps of the sampled batch drew other tokens than op by op")
        grep "^decode_op_by_op:.*dtype $dtype,.*DIFFERENT" "$model_txt" >/dev/null &&
            failed+=("bench_model ($dtype): recorded decode steps drew other tokens than the same steps op by op")
        # packed prefill vs one prompt a forward: rounding of other GEMM shapes
        # moves logits by a few bf16 ulps; a tenth of the largest is a layout error
        grep "^prefill:.*dtype $dtype," "$model_txt" | awk '{
                match($0, /max diff [^ ]+ of max \|logit\| [^ ]+/); split(substr($0, RSTART, RLENGTH), w, " ")
                if (w[3] !~ /^[0-9.]+(e[-+]?[0-9]+)?$/ || !(w[3] + 0 <= 0.1 * (w[7] + 0))) bad = 1 # nan, inf
            } END { exit bad ? 0 : 1 }' &&
            failed+=("bench_model ($dtype): packed prefill gave other last-row logits than one prompt a forward")
        [ "$bf16_peak" != 0 ] && grep "^train_step:.*dtype $dtype," "$model_txt" |
            awk -v p="$bf16_peak" -v d="$dtype" '{
                match($0, /micro-batches [0-9]+/); k = substr($0, RSTART + 14, RLENGTH - 14)
                f = ""; if (match($0, /fill [0-9.]+/)) f = ", " substr($0, RSTART, RLENGTH) " packed"
                match($0, /[0-9.]+ TFLOP\/s/); t = substr($0, RSTART, RLENGTH - 8)
                printf "train_step (%s, %s micro-batches%s): %.1f%% of the bf16 peak (%s TFLOP/s; target >= 50%%)\n", d, k, f, 100 * t / p, p
            }'
    else
        cat "$logs/bench_model_$dtype.err" >&2
        failed+=("bench_model ($dtype)")
    fi
done

# ---- 4a. decode again with every op's parameters copied anew (SRLM_CUDA_STAGE_SHARE=0):
# what sharing the staged parameters across a step's layers saves, same card and run ----
noshare_txt=$logs/bench_model_noshare.txt
: >"$noshare_txt"
if [ ${#quick[@]} = 0 ] && [ "${SRLM_GPU_MODEL:-1}" != 0 ] && grep -q "^decode: .*dtype bfloat16" "$model_txt"; then
    step "4a. decode without shared staging (SRLM_CUDA_STAGE_SHARE=0), for the ratio"
    t=$(limit "$model_timeout")
    [ "$t" -lt 60 ] && t=0 # loading the 1.1B model takes a good part of a minute
    if [ "$t" = 0 ]; then
        skipped+=("bench_model (SRLM_CUDA_STAGE_SHARE=0)")
    elif SRLM_CUDA_STAGE_SHARE=0 timeout -k 10 "$t" "$build/benchmarks/gpu/bench_model" --backend cuda \
            --dtype bfloat16 --config 1b --batch 1 --seq 64 --micro-batches 1 --steps 1 --decode 128 \
            --decode-batch 0 >"$noshare_txt" 2>"$logs/bench_model_noshare.err"; then
        grep "^decode_op_by_op:" "$noshare_txt" | sed 's/^/without sharing: /'
        awk '/^decode_op_by_op:.*dtype bfloat16/ { match($0, /[0-9.]+ tokens\/s/); v = substr($0, RSTART, RLENGTH - 9) + 0
                          if (FILENAME == ARGV[1]) without = v; else with = v }
             END { if (with > 0 && without > 0)
                       printf "decode op by op (bf16, batch 1): %.1f tokens/s with shared staging, %.1f without: %.2fx\n", with, without, with / without }' \
            "$noshare_txt" "$model_txt"
    else
        tail -n 5 "$logs/bench_model_noshare.err" >&2
        failed+=("bench_model (SRLM_CUDA_STAGE_SHARE=0)")
    fi
fi

# ---- 4b. the PyTorch peer of the bf16 training step (same shape, card and run) ----
peer_model_txt=$logs/peer_model.txt
: >"$peer_model_txt"
if [ ${#quick[@]} = 0 ] && grep -q "^train_step:.*dtype bfloat16" "$model_txt"; then
    step "4b. the training step's PyTorch peer (peer_model.py: transformers' LlamaForCausalLM, same shape)"
    t=$(limit "$model_timeout")
    if [ "$t" = 0 ]; then
        skipped+=("peer_model.py")
    elif ! $python -c "import torch, transformers" >/dev/null 2>&1; then
        echo "training-step peer not measured: no torch or transformers for $python"
    elif timeout -k 10 "$t" $python benchmarks/gpu/peer_model.py --peak-tflops "$bf16_peak" >"$peer_model_txt" \
            2>"$logs/peer_model.err"; then
        cat "$peer_model_txt"
        # srlm's bf16 step (whole batches) over each peer's, micro-batch count by count
        awk '/^train_step_torch:/ {
                 match($0, /micro-batches [0-9]+/); k = substr($0, RSTART + 14, RLENGTH - 14)
                 match($0, /precision [a-z0-9]+/); p = substr($0, RSTART + 10, RLENGTH - 10)
                 match($0, /[0-9.]+ TFLOP\/s/); peer[k, p] = substr($0, RSTART, RLENGTH - 8); next }
             /^train_step:.*dtype bfloat16/ && !/fill/ {
                 match($0, /micro-batches [0-9]+/); k = substr($0, RSTART + 14, RLENGTH - 14)
                 match($0, /[0-9.]+ TFLOP\/s/); s = substr($0, RSTART, RLENGTH - 8)
                 if ((k, "autocast") in peer && (k, "bf16") in peer)
                     printf "train_step srlm/torch (bf16, %s micro-batches): %.2fx PyTorch autocast (fp32 master weights), %.2fx PyTorch bf16 parameters\n", k, s / peer[k, "autocast"], s / peer[k, "bf16"] }' \
            "$peer_model_txt" "$model_txt"
    else
        tail -n 5 "$logs/peer_model.err" >&2
        echo "training-step peer not measured: peer_model.py failed ($logs/peer_model.err)"
    fi
fi

# ---- 5. one table, and RESULTS.md ----
step "5. results ($gpu_name)"
# srlm and torch rows joined on kernel, dtype and shape
table=$logs/table.tsv
awk -F'\t' -v OFS='\t' '
    FNR == 1 { next }
    FILENAME == ARGV[1] { t[$2 FS $3 FS $4] = $6; next }
    {
        k = $2 FS $3 FS $4
        tv = (k in t) ? t[k] : "-"
        ratio = (k in t && t[k] > 0) ? sprintf("%.2f", $6 / t[k]) : "-"
        bound = ($8 != "-") ? $10 "%" : "-"
        print $2, $3, $4, $5, $6, tv, $7, ratio, bound
    }' "$torch_tsv" "$srlm_tsv" >"$table"
{
    printf 'kernel\tdtype\tshape\tsrlm_ms\tsrlm\ttorch\tunit\tsrlm/torch\tof_copy_bw\n'
    cat "$table"
} | if command -v column >/dev/null 2>&1; then column -t -s $'\t'; else cat; fi
[ -n "$peer_note" ] && echo "($peer_note)"

# the model's rows go in even when the kernel table is empty (bench_kernels failed)
if [ "${SRLM_GPU_NO_RESULTS:-0}" != 1 ] && { [ -s "$table" ] || [ -s "$model_txt" ]; } && [ ${#quick[@]} = 0 ]; then
    day=$(date -u +%Y-%m-%d)
    sha=${SRLM_GPU_COMMIT:-$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)}
    [ -n "$sm90_off" ] && sha="$sha, $sm90_off" # the wgmma kernels failed: these rows ran without them
    rows=$logs/rows.md
    awk -F'\t' -v d="$day" -v g="$gpu_name" -v s="$sha" -v note="$peer_note" '{
        tv = ($6 == "-" && note != "") ? "not measured" : $6
        printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", d, g, s, $1, $2, $3, $4, $5, tv, $7, ($8 == "-" ? $9 : $8 " (" $9 ")")
    }' "$table" >"$rows"
    # the whole-model lines of bench_model as rows of the same table (no torch peer)
    awk -v d="$day" -v g="$gpu_name" -v s="$sha" '
        FILENAME == ARGV[1] {
            if (/^train_step_torch:.*precision autocast/) {
                match($0, /micro-batches [0-9]+/); k = substr($0, RSTART + 14, RLENGTH - 14)
                match($0, /[0-9.]+ TFLOP\/s/); peer[k] = substr($0, RSTART, RLENGTH - 8)
            }
            next
        }
        /^train_step: batch/ {
            match($0, /mean [0-9.]+ s/); ms = substr($0, RSTART + 5, RLENGTH - 7) * 1000
            match($0, /[0-9.]+ TFLOP\/s/); tf = substr($0, RSTART, RLENGTH - 8)
            dt = "fp32"; if ($0 ~ /dtype bfloat16/) dt = "bf16"
            mfu = "-"; if (match($0, /MFU [0-9.]+%/)) mfu = substr($0, RSTART + 4, RLENGTH - 4) " of the " dt " peak"
            shape = "1.1B, batch 4 x 1024"
            if (match($0, /micro-batches [0-9]+/) && substr($0, RSTART + 14, RLENGTH - 14) + 0 > 1)
                shape = "1.1B, " substr($0, RSTART + 14, RLENGTH - 14) " micro-batches of 4 x 1024"
            if (match($0, /fill [0-9.]+/))
                shape = shape ", lengths at " substr($0, RSTART + 5, RLENGTH - 5) " of it, packed"
            # the peer (PyTorch autocast, peer_model.py) for whole bf16 batches
            k = 1; if (match($0, /micro-batches [0-9]+/)) k = substr($0, RSTART + 14, RLENGTH - 14)
            tv = "-"; ratio = mfu
            if (dt == "bf16" && $0 !~ /fill/ && (k in peer)) { tv = peer[k]; ratio = sprintf("%.2f (MFU %s)", tf / peer[k], mfu) }
            printf "| %s | %s | %s | model train step (fwd+bwd+AdamW) | %s | %s | %.1f | %s | %s | TFLOP/s | %s |\n", d, g, s, dt, shape, ms, tf, tv, ratio
        }
        /^decode:/ {
            match($0, /[0-9.]+ tokens\/s/); tps = substr($0, RSTART, RLENGTH - 9)
            pct = "-"; if (match($0, /\([0-9.]+%\)/)) pct = substr($0, RSTART + 1, RLENGTH - 2) " of the weight-read bound"
            dt = "fp32"; if ($0 ~ /dtype bfloat16/) dt = "bf16"
            printf "| %s | %s | %s | model decode, batch 1 (recorded steps) | %s | 1.1B, 128 tokens | - | %s | - | tokens/s | %s |\n", d, g, s, dt, tps, pct
        }
        /^decode_op_by_op:/ {
            match($0, /[0-9.]+ tokens\/s/); tps = substr($0, RSTART, RLENGTH - 9)
            match($0, /steps [0-9.]+x/); x = substr($0, RSTART + 6, RLENGTH - 7)
            same = "the same tokens"; if ($0 ~ /DIFFERENT/) same = "DIFFERENT tokens"
            dt = "fp32"; if ($0 ~ /dtype bfloat16/) dt = "bf16"
            printf "| %s | %s | %s | model decode, batch 1, op by op | %s | 1.1B, 128 tokens | - | %s | - | tokens/s | recorded steps %sx this, %s |\n", d, g, s, dt, tps, x, same
        }
        /^train_phases:/ {
            match($0, /forward [0-9.]+ ms \([0-9.]+/); split(substr($0, RSTART, RLENGTH), fw, /[ (]+/)
            match($0, /backward [0-9.]+ ms \([0-9.]+/); split(substr($0, RSTART, RLENGTH), bw, /[ (]+/)
            match($0, /optimizer [0-9.]+/); op = substr($0, RSTART + 10, RLENGTH - 10)
            dt = "fp32"; if ($0 ~ /dtype bfloat16/) dt = "bf16"
            printf "| %s | %s | %s | model train step by phase (forward / backward TFLOP/s; optimizer %s ms), the device waited for after each | %s | 1.1B, batch 4 x 1024 | %.1f | %s / %s | - | TFLOP/s | - |\n", d, g, s, op, dt, fw[2] + bw[2] + op, fw[4], bw[4]
        }
        /^decode_gemm:/ {
            match($0, /decode_gemm: [a-z_\/]+/); nm = substr($0, RSTART + 13, RLENGTH - 13)
            match($0, /rows [0-9]+/); r = substr($0, RSTART + 5, RLENGTH - 5)
            match($0, /W [0-9]+ x [0-9]+/); w = substr($0, RSTART + 2, RLENGTH - 2)
            match($0, /[0-9.]+ us per call/); us = substr($0, RSTART, RLENGTH - 12)
            match($0, /issued in [0-9.]+ us/); is = substr($0, RSTART + 10, RLENGTH - 13)
            match($0, /[0-9.]+ GB\/s of weights/); gb = substr($0, RSTART, RLENGTH - 16)
            pct = "-"; if (match($0, /\([0-9.]+% of/)) pct = substr($0, RSTART + 1, RLENGTH - 5) "% of copy"
            dt = "fp32"; if ($0 ~ /dtype bfloat16/) dt = "bf16"
            printf "| %s | %s | %s | model decode GEMM (%s), issued in %s us | %s | %s rows x W %s | %.4f | %s | - | GB/s | %s |\n", d, g, s, nm, is, dt, r, w, us / 1000, gb, pct
        }
        /^prefill:/ {
            match($0, /[0-9]+ prompts of [0-9]+ \.\. [0-9]+ tokens/); sh = substr($0, RSTART, RLENGTH)
            match($0, /one a forward [0-9.]+/); one = substr($0, RSTART + 14, RLENGTH - 14)
            match($0, /packed [0-9.]+/); pk = substr($0, RSTART + 7, RLENGTH - 7)
            match($0, /forwards, [0-9.]+x/); x = substr($0, RSTART + 10, RLENGTH - 11)
            match($0, /max diff [^ ]+ of max \|logit\| [^ ]+/); df = substr($0, RSTART, RLENGTH)
            dt = "fp32"; if ($0 ~ /dtype bfloat16/) dt = "bf16"
            printf "| %s | %s | %s | model prefill, prompts packed (srlm_llama_prefill) | %s | 1.1B, %s | - | %s | - | tokens/s | %sx one prompt a forward (%s tokens/s); logits %s |\n", d, g, s, dt, sh, pk, x, one, df
        }
        /^decode_sampled:/ && /backend sampling/ {
            match($0, /batch [0-9]+/); bs = substr($0, RSTART + 6, RLENGTH - 6)
            match($0, /[0-9]+ steps/); st = substr($0, RSTART, RLENGTH - 6)
            match($0, /host sampling [0-9.]+/); host = substr($0, RSTART + 14, RLENGTH - 14)
            match($0, /backend sampling [0-9.]+/); dev = substr($0, RSTART + 17, RLENGTH - 17)
            match($0, /\([0-9.]+x\)/); x = substr($0, RSTART + 1, RLENGTH - 3)
            dt = "fp32"; if ($0 ~ /dtype bfloat16/) dt = "bf16"
            printf "| %s | %s | %s | model decode, batch %s, sampled on the device | %s | 1.1B, %s steps | - | %s | - | tokens/s | %sx sampling on the host (%s tokens/s) |\n", d, g, s, bs, dt, st, dev, x, host
        }' "$peer_model_txt" "$model_txt" >>"$rows"
    if ! grep -q '^## GPU kernels' "$results"; then
        {
            cat <<'HEAD'

## GPU kernels (`benchmarks/gpu/run.sh`)

srlm's CUDA kernels vs the PyTorch peer on the same GPU (`benchmarks/gpu/README.md`): median
of CUDA-event timings after warm-up. Attention TFLOP/s with the causal count (fwd 4*B*H*S*S*D/2,
bwd 2.5x fwd); log-prob and decode GB/s, with their share of the device-to-device copy
bandwidth (read + write) measured in the same run.

| date | GPU | commit | kernel | dtype | shape | srlm ms | srlm | torch | unit | srlm/torch (or % of copy) |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
HEAD
            cat "$rows"
        } >>"$results"
    else
        # append at the end of the section: before the next "## " heading, after its table
        awk -v rows_file="$rows" '
            BEGIN { while ((getline l < rows_file) > 0) rows = rows l "\n" }
            /^## / {
                if (insec && !done) { printf "%s", rows; done = 1 }
                printf "%s", blanks; blanks = ""
                insec = ($0 ~ /^## GPU kernels/)
                print; next
            }
            insec && /^[[:space:]]*$/ { blanks = blanks $0 "\n"; next }
            { printf "%s", blanks; blanks = ""; print }
            END { if (insec && !done) printf "%s", rows; printf "%s", blanks }
        ' "$results" >"$results.tmp" && mv "$results.tmp" "$results"
    fi
    echo "appended $(wc -l <"$rows") rows to $results (## GPU kernels)"
fi

# ---- 6. compute-sanitizer on each kernel test (last: the slowest step) ----
step "6. compute-sanitizer memcheck and racecheck on tests/gpu"
sanitizer=$(command -v compute-sanitizer)
for c in /usr/local/cuda/bin/compute-sanitizer /usr/local/cuda/compute-sanitizer/compute-sanitizer; do
    [ -n "$sanitizer" ] || { [ -x "$c" ] && sanitizer=$c; }
done
if [ -z "$sanitizer" ]; then
    echo "compute-sanitizer not found: sanitizer runs skipped"
    failed+=("compute-sanitizer missing")
else
    api_errors=()
    "$sanitizer" --help 2>&1 | grep -q -- --report-api-errors && api_errors=(--report-api-errors no)
    # every kernel test, or those of SRLM_GPU_SANITIZE_TESTS in its order (an
    # entry NAME:TOOL runs that tool only, e.g. a heavy test's memcheck alone)
    names=()
    declare -A tools_of=()
    if [ -n "${SRLM_GPU_SANITIZE_TESTS:-}" ]; then
        for entry in $SRLM_GPU_SANITIZE_TESTS; do
            name=${entry%%:*}
            tool=""
            [ "$entry" != "$name" ] && tool=${entry#*:}
            case "$tool" in
                "" | memcheck | racecheck) ;;
                *) echo "SRLM_GPU_SANITIZE_TESTS entry $entry: the tool is memcheck or racecheck"
                   failed+=("sanitize $entry: no such tool")
                   continue ;;
            esac
            if [ -f "tests/gpu/$name.c" ]; then
                names+=("$name")
                tools_of[$name]=${tool:-memcheck racecheck}
            else
                echo "SRLM_GPU_SANITIZE_TESTS names $name, which is not a tests/gpu/test_*.c program"
                failed+=("sanitize $name: no such test")
            fi
        done
        echo "sanitizers on ${names[*]:-no test} (SRLM_GPU_SANITIZE_TESTS)"
    else
        for src in tests/gpu/test_*.c; do
            # its kernels are NCCL's, not srlm's (and NCCL's own use of the
            # driver is not what these tools are here for)
            [ "$(basename "$src" .c)" = test_comm_nccl_gpu ] && continue
            names+=("$(basename "$src" .c)")
        done
        echo "sanitizers on every kernel test (test_comm_nccl_gpu left out: no srlm kernels in it)"
    fi
    runs_left=0
    for name in "${names[@]}"; do
        set -- ${tools_of[$name]:-memcheck racecheck}
        runs_left=$((runs_left + $#))
    done
    for name in "${names[@]}"; do
        bin=$build/tests/$name
        tools=${tools_of[$name]:-memcheck racecheck}
        if [ ! -x "$bin" ]; then
            failed+=("$name: not built")
            set -- $tools
            runs_left=$((runs_left - $#))
            continue
        fi
        for tool in $tools; do
            # under a budget each run gets an equal share of what is left, but
            # at least 60 s (a heavy test under racecheck needs minutes): the
            # runs that then find too little left are skipped
            t=$sanitize_timeout
            if [ "$budget" != 0 ]; then
                share=$(( (t_start + budget - $(date +%s) - 5) / runs_left ))
                [ "$share" -lt 60 ] && share=60
                [ "$share" -lt "$t" ] && t=$share
            fi
            runs_left=$((runs_left - 1))
            t=$(limit "$t")
            if [ "$t" = 0 ]; then
                skipped+=("$tool $name")
                continue
            fi
            log=$logs/$name.$tool.log
            # --error-exitcode 86: a hazard found; 77: the test skipped itself
            # API errors are left to the tests (srlm checks every CUDA call, and
            # test_backend_cuda_gpu provokes an out-of-memory error on purpose);
            # the sanitizer is here for device-side accesses and races
            timeout -k 10 "$t" "$sanitizer" --tool "$tool" "${api_errors[@]}" --error-exitcode 86 \
                "$bin" >"$log" 2>&1
            rc=$?
            case $rc in
                0) verdict=clean ;;
                77) verdict="skipped (the test found no GPU)" ;;
                86) verdict="HAZARDS FOUND"; failed+=("$tool $name") ;;
                124) verdict="TIMED OUT"; failed+=("$tool $name (timeout)") ;;
                *) verdict="test failed (exit $rc)"; failed+=("$tool $name (exit $rc)") ;;
            esac
            printf '%-24s %-10s %s  (%s)\n' "$name" "$tool" "$verdict" "$log"
            [ "$rc" = 0 ] || [ "$rc" = 77 ] || tail -n 15 "$log"
        done
    done
fi

if [ ${#skipped[@]} -gt 0 ]; then
    printf '\nSKIPPED (SRLM_GPU_BUDGET_S=%s spent): %s\n' "$budget" "${skipped[*]}"
fi
if [ ${#failed[@]} -gt 0 ]; then
    printf '\nFAILED: %s\n' "${failed[@]}"
    exit 1
fi
if [ ${#skipped[@]} -gt 0 ]; then
    printf '\nthe GPU checks that ran passed (some were skipped, above); logs in %s\n' "$logs"
else
    printf '\nall GPU checks passed; logs in %s\n' "$logs"
fi
