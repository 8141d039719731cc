#!/usr/bin/env bash
# Fuzz every parser that reads outside input (ctest label `fuzz`, tests/fuzz/):
# installs clang when it is missing (apt-get; sudo when not root), configures
# build-fuzz with clang and -DSRLM_FUZZ=ON, builds the harnesses, runs
#   ctest --test-dir build-fuzz -L fuzz --output-on-failure
# and prints per target "TARGET: N execs, M s, corpus K files (S KB), result ok|crash".
#
# Environment: SRLM_FUZZ_SECONDS (per target, default 20), SRLM_FUZZ_BUILD
# (build folder, default build-fuzz), SRLM_FUZZ_FLAGS (extra libFuzzer flags),
# JOBS (build jobs, default 2). Crash reproducers land in
# BUILD/tests/fuzz/work/artifacts/TARGET/; a fixed one goes to
# tests/fuzz/regressions/TARGET/.
set -uo pipefail
cd "$(dirname "$0")/../.."
build=${SRLM_FUZZ_BUILD:-build-fuzz}
seconds=${SRLM_FUZZ_SECONDS:-20}

if ! command -v clang > /dev/null || ! command -v clang++ > /dev/null; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "fuzz: clang is missing; installing it (apt-get install clang)"
  $sudo apt-get update -q > /dev/null 2>&1 || true
  if ! DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q clang > /tmp/srlm-fuzz-apt.log 2>&1; then
    echo "fuzz: installing clang failed:"
    tail -20 /tmp/srlm-fuzz-apt.log
    exit 1
  fi
fi
echo "fuzz: $(clang --version | head -1)"

# Asserts stay on (no -DNDEBUG); the compilers are named explicitly so that a
# build folder configured earlier with another compiler is reconfigured.
if ! CC=clang CXX=clang++ cmake -S . -B "$build" -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
    -DSRLM_FUZZ=ON -DSRLM_CUDA=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O2 -g" -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g" \
    -DSRLM_FUZZ_SECONDS="$seconds" > /tmp/srlm-fuzz-configure.log 2>&1; then
  echo "fuzz: configuring $build failed:"
  tail -30 /tmp/srlm-fuzz-configure.log
  exit 1
fi
t0=$(date +%s)
if ! cmake --build "$build" --target srlm_fuzzers -j"${JOBS:-2}" > /tmp/srlm-fuzz-build.log 2>&1; then
  echo "fuzz: building the harnesses failed:"
  grep -E "error|Error" /tmp/srlm-fuzz-build.log | head -30
  exit 1
fi
echo "fuzz: harnesses built in $(( $(date +%s) - t0 )) s"

work=$build/tests/fuzz/work
rm -rf "$work/summary"
t0=$(date +%s)
ctest --test-dir "$build" -L fuzz --output-on-failure
status=$?
echo "fuzz: ctest -L fuzz: exit status $status after $(( $(date +%s) - t0 )) s"
echo "fuzz: per target (corpus = the scratch corpus after fuzzing; the committed one is unchanged)"
if ls "$work"/summary/*.txt > /dev/null 2>&1; then
  cat "$work"/summary/*.txt | sed 's/^/  /'
else
  echo "  (no summaries: no fuzz test ran)"
fi
exit $status
