#!/usr/bin/env bash
# srlm check-config: the shipped configs load, the output is a config that loads
# again unchanged, errors exit 2 with FILE:LINE:COLUMN on stderr, --help exits 0;
# srlm --version names the commit, the backends, MPI and BLAS.
set -u

: "${SRLM_BIN:?SRLM_BIN must name the srlm binary}"
: "${SRLM_TMP:?SRLM_TMP must name a scratch folder}"
: "${SRLM_SOURCE_DIR:?SRLM_SOURCE_DIR must name the source tree}"

dir="$SRLM_TMP/check_config"
mkdir -p "$dir" || exit 1
failures=0

fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}

. "$SRLM_SOURCE_DIR/tests/cli/lib.sh" # run_srlm, expect_stdout, expect_stderr

# --- the shipped configs load and round-trip through their printed form ---
for name in tiny-test llama2-7b; do
    cfg="$SRLM_SOURCE_DIR/configs/$name.yaml"
    if run_srlm 0 check-config "$cfg"; then
        cp "$dir/out" "$dir/$name.resolved.yaml"
        [ -s "$dir/err" ] && fail "check-config $name wrote to stderr: $(cat "$dir/err")"
        if run_srlm 0 check-config "$dir/$name.resolved.yaml"; then
            cmp -s "$dir/out" "$dir/$name.resolved.yaml" ||
                fail "$name: printing the printed config changes it"
        fi
    fi
done

# values from the file and from overrides show in the output
run_srlm 0 check-config "$SRLM_SOURCE_DIR/configs/tiny-test.yaml" train.dpo.beta=0.25 run.seed=9 &&
    {
        expect_stdout "    beta: 0.25"
        expect_stdout "  seed: 9"
        expect_stdout "  name: \"tiny-test\""
        expect_stdout "    lr: 0.001"
    }

# no file at all: defaults + overrides
run_srlm 0 check-config model.path=/models/m && expect_stdout "  path: \"/models/m\""

# --- errors: exit 2, message on stderr with FILE:LINE:COLUMN, nothing on stdout ---
bad="$dir/bad.yaml"
printf 'model:\n  path: /m\ntrain:\n  sft:\n    lr: fast\n' >"$bad"
if run_srlm 2 check-config "$bad"; then
    expect_stderr "srlm check-config: error: $bad:5:9: key 'train.sft.lr': expected a number > 0, found 'fast'"
    [ -s "$dir/out" ] && fail "a bad config printed something on stdout"
fi

printf 'model:\n  path: /m\njudge:\n  sampels: 2\n' >"$bad"
run_srlm 2 check-config "$bad" &&
    expect_stderr "$bad:4:3: unknown key 'judge.sampels' (did you mean 'judge.samples'?)"

printf 'run:\n  seed: 1\n' >"$bad"
run_srlm 2 check-config "$bad" && expect_stderr "$bad: missing required key 'model.path'"

run_srlm 2 check-config "$dir/does-not-exist.yaml" && expect_stderr "does-not-exist.yaml"

# override errors name the override
run_srlm 2 check-config "$SRLM_SOURCE_DIR/configs/tiny-test.yaml" train.sft.lr=abc &&
    expect_stderr "override 'train.sft.lr=abc': expected a number > 0, found 'abc'"
run_srlm 2 check-config model.path=/m generate.top_pp=0.5 &&
    expect_stderr "unknown key 'generate.top_pp' (did you mean 'generate.top_p'?)"
run_srlm 2 check-config "$SRLM_SOURCE_DIR/configs/tiny-test.yaml" second-file.yaml &&
    expect_stderr "second-file.yaml"
run_srlm 2 check-config --no-such-flag

# --- help and the key reference ---
run_srlm 0 check-config --help && expect_stdout "usage: srlm check-config"
run_srlm 0 check-config --keys && expect_stdout "train.dpo.beta"
run_srlm 0 check-config --comments model.path=/m && expect_stdout "# peak learning rate"

# --- what the binary was built with (srlm --version: the first thing to ask on a cluster) ---
run_srlm 0 --version && expect_stdout "srlm 0." && expect_stdout "(commit " && expect_stdout "backends: cpu, cpu_guarded" &&
    expect_stdout "MPI: " && expect_stdout "BLAS: OpenBLAS"

if [ "$failures" -ne 0 ]; then
    echo "$failures check(s) failed" >&2
    exit 1
fi
echo "all checks passed"
