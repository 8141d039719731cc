#!/usr/bin/env bash
# Valgrind memcheck over every unit-labelled C test program (ctest label
# `valgrind`; the shell and MPI tests are not run under it): installs valgrind
# when it is missing (apt-get; sudo when not root), configures build-valgrind as
# a Release build with -g and -DSRLM_VALGRIND=ON, builds, and runs
#   ctest --test-dir build-valgrind -L valgrind --output-on-failure -j2
# Each test is `valgrind --error-exitcode=1 --leak-check=full` with
# OMP_NUM_THREADS=1 and the suppressions of tests/valgrind/*.supp (runtime
# libraries only, each one explained there): any memcheck error or a definite or
# possible leak fails it, and the report prints a suppression skeleton.
#
# Environment: SRLM_VALGRIND_BUILD (build folder, default build-valgrind),
# SRLM_VALGRIND_FLAGS (extra valgrind flags, e.g. --track-origins=yes),
# JOBS (build and test jobs, default 2), SRLM_WERROR (default ON).
set -uo pipefail
cd "$(dirname "$0")/../.."
build=${SRLM_VALGRIND_BUILD:-build-valgrind}
jobs=${JOBS:-2}

if ! command -v valgrind > /dev/null; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "valgrind: valgrind is missing; installing it (apt-get install valgrind)"
  $sudo apt-get update -q > /dev/null 2>&1 || true
  if ! DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends valgrind \
      > /tmp/srlm-valgrind-apt.log 2>&1; then
    echo "valgrind: installing valgrind failed:"
    tail -20 /tmp/srlm-valgrind-apt.log
    exit 1
  fi
fi
echo "valgrind: $(valgrind --version)"

# Release (-O3 -DNDEBUG, what users run) plus -g so that reports have lines.
if ! cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS=-g -DCMAKE_CXX_FLAGS=-g \
    -DSRLM_VALGRIND=ON -DSRLM_CUDA=OFF -DSRLM_WERROR="${SRLM_WERROR:-ON}" \
    -DSRLM_VALGRIND_FLAGS="${SRLM_VALGRIND_FLAGS:-}" > /tmp/srlm-valgrind-configure.log 2>&1; then
  echo "valgrind: configuring $build failed:"
  tail -30 /tmp/srlm-valgrind-configure.log
  exit 1
fi
t0=$(date +%s)
if ! cmake --build "$build" -j"$jobs" > /tmp/srlm-valgrind-build.log 2>&1; then
  echo "valgrind: building failed:"
  grep -E "error|Error" /tmp/srlm-valgrind-build.log | head -30
  exit 1
fi
echo "valgrind: built in $(( $(date +%s) - t0 )) s"
t0=$(date +%s)
ctest --test-dir "$build" -L valgrind --output-on-failure -j"$jobs"
status=$?
echo "valgrind: ctest -L valgrind: exit status $status after $(( $(date +%s) - t0 )) s"
exit $status
