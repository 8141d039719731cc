#!/usr/bin/env bash
# The shipped configs: every configs/*.yaml passes `srlm check-config`; `srlm plan`
# fits the 70B config on 8 nodes x 8 GPUs x 80 GiB, refuses it on 1 node (naming
# the optimizer state or more nodes), and counts the Llama-2 parameters exactly.
set -u

: "${SRLM_BIN:?SRLM_BIN must name the srlm binary}"
: "${SRLM_TMP:?SRLM_TMP must name a scratch folder}"
: "${SRLM_SOURCE_DIR:?SRLM_SOURCE_DIR must name the source tree}"
: "${SRLM_FIXTURES:=$SRLM_SOURCE_DIR/tests/fixtures}"

dir="$SRLM_TMP/configs"
mkdir -p "$dir" || exit 1
failures=0

fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}

. "$SRLM_SOURCE_DIR/tests/cli/lib.sh" # run_srlm, expect_stdout, expect_stderr

# json_number KEY: the first "KEY": NUMBER of the last --json output
json_number() {
    grep -oE "\"$1\":[[:space:]]*[0-9.eE+-]+" "$dir/out" | head -n 1 | sed -E 's/.*:[[:space:]]*//'
}

# --- every shipped config loads (whatever configs/ holds) ---
n=0
for cfg in "$SRLM_SOURCE_DIR"/configs/*.yaml; do
    [ -e "$cfg" ] || continue
    n=$((n + 1))
    if ! "$SRLM_BIN" check-config "$cfg" >"$dir/out" 2>"$dir/err"; then
        fail "$cfg: srlm check-config failed: $(cat "$dir/err")"
    fi
done
[ "$n" -ge 3 ] || fail "expected at least 3 configs in $SRLM_SOURCE_DIR/configs, found $n"
for name in llama2-7b llama2-13b llama2-70b; do
    [ -f "$SRLM_SOURCE_DIR/configs/$name.yaml" ] || fail "configs/$name.yaml is missing"
done

c70="$SRLM_SOURCE_DIR/configs/llama2-70b.yaml"
c13="$SRLM_SOURCE_DIR/configs/llama2-13b.yaml"

# --- 70B on 8 nodes x 8 GPUs x 80 GiB fits ---
if run_srlm 0 plan "$c70" --arch 70b --nodes 8 --gpus-per-node 8 --gpu-mem 80; then
    expect_stdout "fits: peak"
    expect_stdout "68,976,648,192"
    expect_stdout "optimizer"
    [ -s "$dir/err" ] && fail "a fitting plan wrote to stderr: $(cat "$dir/err")"
fi

# --- on 1 node it does not: the optimizer state needs more nodes ---
if run_srlm 2 plan "$c70" --arch 70b --nodes 1 --gpus-per-node 8 --gpu-mem 80; then
    grep -qE "optimizer state|--nodes [0-9]+" "$dir/err" ||
        fail "the 1-node refusal names neither the optimizer state nor more nodes: $(cat "$dir/err")"
    expect_stderr "srlm plan: error: does not fit in 80 GiB"
    expect_stdout "DOES NOT FIT"
fi

# --- exact parameter counts through --json ---
for pair in 70b:68976648192 13b:13015864320 7b:6738415616; do
    arch=${pair%%:*} want=${pair#*:}
    if run_srlm 0 plan "$SRLM_SOURCE_DIR/configs/llama2-$arch.yaml" --arch "$arch" --nodes 8 --json; then
        got=$(json_number parameters)
        [ "$got" = "$want" ] || fail "plan --arch $arch: parameters $got, expected $want"
        grep -qE '"fits":[[:space:]]*true' "$dir/out" || fail "plan --arch $arch --json: fits is not true"
    fi
done

# --- the shapes come from model.path/config.json when it exists, and agree with inspect ---
tiny="$SRLM_FIXTURES/llama/tiny-gqa"
if run_srlm 0 inspect "$tiny"; then
    want=$(sed -n 's/^parameters: //p' "$dir/out" | tr -d ,)
    if run_srlm 0 plan model.path="$tiny" parallel.tp=2 --json; then
        got=$(json_number parameters)
        [ "$got" = "$want" ] || fail "plan on $tiny: parameters $got, inspect says $want"
        expect_stdout "config.json"
    fi
fi

# --- bad input: exit 2 with the reason ---
run_srlm 2 plan "$c70" && expect_stderr "config.json does not exist: give --arch"
run_srlm 2 plan "$c70" --arch 65b && expect_stderr "unknown architecture '65b'"
run_srlm 2 plan "$c70" --arch 70b parallel.tp=3 && expect_stderr "parallel.tp = 3 does not divide the 64 attention heads"
run_srlm 2 plan "$c70" --arch 70b --gpus-per-node 4 && expect_stderr "a tp group must sit on one node"
run_srlm 2 plan "$c70" --arch 70b --nodes 0 && expect_stderr "--nodes 0"
run_srlm 2 plan && expect_stderr "needs a CONFIG"
run_srlm 2 plan "$c70" "$c13" --arch 70b && expect_stderr "only one config file"
run_srlm 0 plan --help && expect_stdout "usage: srlm plan"

# --- the cluster keys are config keys, and they do not change the config hash ---
run_srlm 0 check-config "$c70" --hash && h1=$(grep '^# hash' "$dir/out")
run_srlm 0 check-config "$c70" cluster.mfu=0.5 --hash && h2=$(grep '^# hash' "$dir/out")
[ "${h1:-x}" = "${h2:-y}" ] || fail "cluster.mfu changes the config hash ($h1 vs $h2)"
run_srlm 2 check-config "$c70" cluster.mfu=1.5 && expect_stderr "cluster.mfu"

if [ "$failures" -ne 0 ]; then
    echo "$failures check(s) failed" >&2
    exit 1
fi
echo "all checks passed"
