#!/usr/bin/env bash
# TIMEOUT: 600
# A stuck rank in `srlm run` (issue 10): a rank frozen by SIGSTOP (every thread,
# its own watchdog's too) must not hang the job. The tiny loop fixture of
# test_loop.sh runs under mpirun with run.watchdog_s=5; a rank is frozen in the
# middle of a phase:
#  A  -np 4 (2 worker groups x tp 2): rank 3, a tp member of group 1, at the
#     start of its first candidates item (a self-sent SIGSTOP at a fault point,
#     SRLM_FAULT=...:stop, so the moment is deterministic); its leader, rank 2,
#     waits in a tp collective and trips its watchdog;
#  B  -np 4: rank 2, the leader of group 1, at the start of its first judgements
#     item, while rank 0 coordinates; rank 3 waits in a collective;
#  C  -np 2 with tp 1 (2 groups of one rank): rank 1, a whole group, at the start
#     of its first candidates item. Nobody waits for it in a collective: only
#     rank 0, the coordinator, can see it, by the silence of group 1's leader
#     while it holds an item (before the fix rank 0 counted its own waiting as
#     progress and the job hung forever);
#  D  -np 4: rank 0, the coordinator, stopped from outside (kill -STOP) as soon
#     as state.json says iteration 1 has begun: the leaders waiting for its
#     replies and its tp partner trip their watchdogs;
#  E  -np 4: rank 2 after the run is done, just before MPI_Finalize, which
#     waits for every rank (before the fix the others had stopped their
#     watchdogs by then and waited forever).
# Each time: the job exits within run.watchdog_s + a margin, with exit status 70
# and a watchdog message, and leaves no process behind; rerunning the same
# command resumes and ends with the same files as an uninterrupted run, with no
# temporary file of a writer killed in the middle left in a part folder (one is
# planted in A's candidates; the rerun's scan removes it). About 80 s alone on 2
# cores, 2-3 min under ASan or a loaded machine: hence the longer ctest timeout.
set -u
bin="$SRLM_BIN"
fx="$SRLM_FIXTURES"
work="$SRLM_TMP/loop_watchdog"
wd=5        # run.watchdog_s of the stopped runs
margin=25   # seconds allowed past wd for mpirun to notice and tear the job down
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
mpi() { $MPIEXEC -np "$1" $MPIEXEC_FLAGS "$bin" "${@:2}"; }

# every pid this test started (mpirun and the ranks), so that the trap can end
# what is left; a pid is only touched while its command line is still ours
all_pids=()
ours() { tr '\0' ' ' < "/proc/$1/cmdline" 2> /dev/null | grep -qF -- "run loop.yaml run.name="; }
cleanup() {
  for p in "${all_pids[@]}"; do
    ours "$p" || continue
    kill -CONT "$p" 2> /dev/null
    kill -KILL "$p" 2> /dev/null
  done
}
trap cleanup EXIT
# end_job PID: the job did not get where the test wanted; end it and reap mpirun
end_job() {
  ours "$1" && kill -TERM "$1" 2> /dev/null
  sleep 2
  cleanup
  wait "$1"
}

# ---- M1 and the loop config (tests/fixtures/loop/setup.sh, as test_loop.sh) ----
. "$SRLM_SOURCE_DIR/tests/fixtures/loop/setup.sh"
loop_fixture_m1 "$work" || exit 1
m1="$work/runs/m1/sft/model"
loop_fixture_config loop.yaml "$work" 120 2 2
# the uninterrupted references, 2 groups x tp 2 and 2 groups x tp 1 (run.watchdog_s
# is not part of the config hash; training results depend on tp)
mpi 4 run loop.yaml --quiet 2> ref.log || { echo "FAIL: the uninterrupted run exited $? ($(grep error ref.log | head -1))"; exit 1; }
mpi 2 run loop.yaml run.name=ref-tp1 parallel.tp=1 --quiet 2> ref-tp1.log \
  || { echo "FAIL: the uninterrupted tp 1 run exited $? ($(grep error ref-tp1.log | head -1))"; exit 1; }

same_as_ref() { # $1 = run name, $2 = reference: every artifact but timings and trainer scratch is equal
  local out
  out=$(diff -r -x config.yaml -x state.json -x summary.json -x provenance.json -x metrics.jsonl -x 'step-*' -x train \
         -x '.*.tmp-*' runs/$1 runs/$2 2>&1) || fail "$1: outputs differ from the uninterrupted run: $(echo "$out" | head -3)"
}
state_of() { sed 's/.*) //' "/proc/$1/stat" 2> /dev/null | cut -d' ' -f1; } # R S T Z ..., empty when gone

# run_stopped NAME NP FAULT OUTSIDE WHEN [key=value ...]
#   starts the NP-rank run NAME with SRLM_FAULT=FAULT (may be empty); OUTSIDE:
#   ranks the test stops with kill -STOP, once a rank is stopped (FAULT given)
#   or once state.json matches WHEN. Sets rc, took (seconds from the first stop
#   to the job's end) and log.
run_stopped() {
  local name=$1 np=$2 fault=$3 outside=$4 when=$5
  local ranks
  ranks=$(seq 0 $((np - 1)))
  log=$name.log
  rc=0 took=0
  SRLM_FAULT="$fault" $MPIEXEC -np $np $MPIEXEC_FLAGS "$bin" run loop.yaml run.name=$name run.watchdog_s=$wd "${@:6}" \
    --quiet > "$log" 2>&1 &
  local mp=$! t_start=$SECONDS
  all_pids+=("$mp")
  # the ranks' pids: mpirun's children, by OMPI_COMM_WORLD_RANK
  local -A pid=()
  while [ ${#pid[@]} -lt $np ] && kill -0 $mp 2> /dev/null && [ $((SECONDS - t_start)) -lt 60 ]; do
    for c in $(pgrep -P $mp); do
      local r
      r=$(tr '\0' '\n' < /proc/$c/environ 2> /dev/null | sed -n 's/^OMPI_COMM_WORLD_RANK=//p')
      [ -n "$r" ] && [ -z "${pid[$r]:-}" ] && { pid[$r]=$c; all_pids+=("$c"); }
    done
    sleep 0.02
  done
  [ ${#pid[@]} = $np ] || { fail "$name: did not find the $np ranks' processes"; end_job $mp; return; }
  # wait for the moment to stop
  local stopped=""
  while kill -0 $mp 2> /dev/null && [ $((SECONDS - t_start)) -lt 60 ]; do
    if [ -n "$fault" ]; then
      for r in $ranks; do [ "$(state_of ${pid[$r]})" = T ] && stopped=$r; done
    elif grep -qE "$when" runs/$name/state.json 2> /dev/null; then
      stopped=outside
    fi
    [ -n "$stopped" ] && break
    sleep 0.02
  done
  if [ -z "$stopped" ]; then
    fail "$name: no rank was stopped (the job ended or did not reach the point: $(tail -2 "$log" | tr '\n' ' '))"
    end_job $mp
    return
  fi
  local t_stop=$SECONDS
  for r in $outside; do kill -STOP "${pid[$r]}"; done
  echo "$name: stopped rank(s) ${fault:+$stopped (itself, $fault) }$outside at $(cat runs/$name/state.json 2> /dev/null)"
  # the job must end by itself within run.watchdog_s + margin
  while kill -0 $mp 2> /dev/null && [ $((SECONDS - t_stop)) -le $((wd + margin)) ]; do sleep 0.1; done
  took=$((SECONDS - t_stop))
  if kill -0 $mp 2> /dev/null; then
    fail "$name: the job still runs ${took}s after the stop (run.watchdog_s = $wd): it hangs"
    for r in $ranks; do echo "  rank $r: state $(state_of ${pid[$r]})"; done
    end_job $mp
    rc=1
  else
    wait $mp
    rc=$?
  fi
  echo "$name: exit $rc ${took}s after the stop"
  # nothing left behind (a zombie is not a process left behind: its parent reaps it)
  sleep 1
  for r in $ranks; do
    local s
    s=$(state_of ${pid[$r]})
    if [ -n "$s" ] && [ "$s" != Z ] && ours "${pid[$r]}"; then
      fail "$name: rank $r (pid ${pid[$r]}) is still there after the job ended (state $s)"
      kill -CONT "${pid[$r]}" 2> /dev/null
      kill -KILL "${pid[$r]}" 2> /dev/null
    fi
  done
}

# check NAME PATTERN REF NP [key=value ...]: exit 70, the watchdog's message
# (PATTERN, grep -E), in time; then the same command again resumes and ends
# like the reference REF
check() {
  local name=$1 pattern=$2 ref=$3 np=$4
  [ $rc = 70 ] || fail "$name: exit status $rc, expected 70 (watchdog): $(grep -iE 'error|watchdog' $name.log | head -2)"
  grep -qE "$pattern" $name.log || fail "$name: no message matching '$pattern': $(grep -iE 'error|watchdog' $name.log | head -3)"
  [ $took -le $((wd + margin)) ] || fail "$name: took ${took}s to end"
  grep -E "srlm: watchdog|worker group" $name.log | head -2 | sed "s/^/  $name: /"
  mpi $np run loop.yaml run.name=$name run.watchdog_s=$wd "${@:5}" --quiet > $name.rerun.log 2>&1 \
    || { fail "$name: rerun exited $? ($(grep error $name.rerun.log | head -1))"; return; }
  grep -q '"stage": "done", "iteration": 2' runs/$name/state.json || fail "$name: rerun did not finish: $(cat runs/$name/state.json)"
  same_as_ref $name $ref
  # a writer killed in the middle leaves a temporary file (.NAME.tmp-XXXXXX), never
  # taken for the file it was writing; the rerun removes every one under the run
  local stale
  stale=$(find runs/$name -name '.*.tmp-*' | tr '\n' ' ')
  [ -z "$stale" ] || fail "$name: temporary files left after the rerun: $stale"
}

watchdog_msg='srlm: watchdog: no progress for [0-9]+ s \(run.watchdog_s = 5'
run_stopped A 4 "iter-1/candidates:*:3:start:stop" "" ""
# as a writer killed in the middle would leave it (the phase is incomplete: group 1's item)
printf '{"half' > runs/A/iter-1/candidates/.part-00001.jsonl.tmp-Xy12Zq
# and as rank 0 killed while writing the prompts' filtered list would leave it
# (every part of the phase complete: the phase is not run again)
rm -f runs/A/iter-1/prompts/prompts.jsonl runs/A/iter-1/prompts/prompts.jsonl.done
printf '{"half' > runs/A/iter-1/prompts/.prompts.jsonl.tmp-Ab34Cd
# and the run's own files (state.json is rewritten at every stage)
printf '{"half' > runs/A/.state.json.tmp-Qw56Er
check A "\[rank 2\] $watchdog_msg|\[rank 0\] srlm run: error: .*worker group 1" ref 4
run_stopped B 4 "iter-1/judgements:*:2:start:stop" "" ""
check B "\[rank 3\] $watchdog_msg|\[rank 0\] srlm run: error: .*worker group 1" ref 4
run_stopped C 2 "iter-1/candidates:*:1:start:stop" "" "" parallel.tp=1
check C "\[rank 0\] srlm run: error: iter-1/candidates: worker group 1 \(leader rank 1\) .*run.watchdog_s = 5" ref-tp1 2 parallel.tp=1
run_stopped D 4 "" "0" '"stage": "(prompts|candidates|judgements|pairs|train|eval)", "iteration": [12]'
check D "\[rank [123]\] $watchdog_msg" ref 4
run_stopped E 4 "finalize:0:2:start:stop" "" ""
check E "\[rank [013]\] $watchdog_msg; last: finishing" ref 4

[ $fails = 0 ] && echo "all checks passed" || { echo "$fails check(s) failed"; exit 1; }
