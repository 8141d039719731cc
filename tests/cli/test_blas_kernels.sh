#!/usr/bin/env bash
# OpenBLAS's kernel pick (src/backend/cpu/blas_kernels.h): where OpenBLAS chose
# kernels without AVX2 on a CPU that has AVX2 and FMA, `srlm --version` says so,
# a command that computes restarts itself once with OPENBLAS_CORETYPE set (one
# notice, then the command's own result), OpenBLAS honours the variable, and a
# user's own OPENBLAS_CORETYPE, --help and the commands that do not compute are
# left alone. Skipped (visibly) where OpenBLAS's pick is already fine.
set -u
: "${SRLM_BIN:?}" "${SRLM_TMP:?}" "${SRLM_SOURCE_DIR:?}"
dir="$SRLM_TMP/cli_blas_kernels"
rm -rf "$dir" && mkdir -p "$dir" || exit 1
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
. "$SRLM_SOURCE_DIR/tests/cli/lib.sh"

unset OPENBLAS_CORETYPE
"$SRLM_BIN" --version >"$dir/version" 2>&1 || { cat "$dir/version"; exit 1; }
picked=$(sed -n 's/^BLAS: .* \([A-Za-z0-9]*\) MAX_THREADS.*/\1/p' "$dir/version")
better=$(sed -n 's/^BLAS kernels: .* restart with OPENBLAS_CORETYPE=\([A-Za-z0-9]*\)$/\1/p' "$dir/version")
if [ -z "$better" ]; then
  echo "SKIPPED: OpenBLAS picked its ${picked:-?} kernels, fine for this CPU: nothing to restart"
  exit 77
fi
notice="running again with OPENBLAS_CORETYPE=$better"

# 1. OpenBLAS honours the variable: the pick srlm would restart with is the one it reports.
OPENBLAS_CORETYPE=$better "$SRLM_BIN" --version >"$dir/version2" 2>&1
grep -q "^BLAS: .* $better MAX_THREADS" "$dir/version2" ||
  fail "OPENBLAS_CORETYPE=$better did not change OpenBLAS's pick: $(grep '^BLAS' "$dir/version2")"
grep -q "^BLAS kernels:" "$dir/version2" && fail "--version still suggests a restart with OPENBLAS_CORETYPE set"

# 2. A command that computes restarts once (one notice: no restart loop), and the
# restarted process runs the command: here its usage error, exit status 2.
if run_srlm 2 score --no-such-flag; then
  [ "$(grep -cF "$notice" "$dir/err")" = 1 ] || fail "expected one restart notice; stderr was: $(cat "$dir/err")"
  expect_stderr "no-such-flag"
fi

# 3. Left alone: the user's own choice, --help, and commands that do not compute.
if OPENBLAS_CORETYPE=$picked run_srlm 2 score --no-such-flag; then
  grep -qF "running again" "$dir/err" && fail "restarted although OPENBLAS_CORETYPE was set"
fi
if run_srlm 0 generate --help; then
  grep -qF "running again" "$dir/err" && fail "generate --help restarted"
fi
if run_srlm 2 check-config "$dir/missing.yaml"; then
  grep -qF "running again" "$dir/err" && fail "check-config (computes nothing) restarted"
fi

[ "$fails" = 0 ] && echo "all checks passed"
exit $((fails > 0))
