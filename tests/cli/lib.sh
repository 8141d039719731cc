# Helpers shared by the shell tests (sourced, never run on its own): why, run_srlm,
# expect_stdout, expect_stderr.

# why LOG: the line of LOG that explains a failed command. Under the sanitizers a
# report ends with hints, so its first line (the error itself) is the one to show;
# otherwise the log's last line, where srlm writes its error message.
why() { grep -m1 -E 'Tracer caught|^==[0-9]+==ERROR|runtime error:' "$1" || tail -1 "$1"; }

# run_srlm EXPECTED_RC ARGS...: runs $SRLM_BIN with ARGS, keeps its stdout and
# stderr in $dir/out and $dir/err; another exit status is a failure (the caller's
# fail()), and returns 1.
run_srlm() {
    local want=$1
    shift
    "$SRLM_BIN" "$@" >"$dir/out" 2>"$dir/err"
    local rc=$?
    if [ "$rc" -ne "$want" ]; then
        fail "srlm $* exited $rc, expected $want; stderr: $(cat "$dir/err")"
        return 1
    fi
    return 0
}

# expect_stdout / expect_stderr FIXED_STRING: the last run_srlm's output holds it.
expect_stdout() { grep -qF -- "$1" "$dir/out" || fail "stdout of the last command lacks '$1'"; }
expect_stderr() { grep -qF -- "$1" "$dir/err" || fail "stderr lacks '$1'; stderr was: $(cat "$dir/err")"; }
