#!/usr/bin/env bash
# The project's Slurm batch script on a real (one-node, private) Slurm cluster:
#  - sbatch launch/slurm/srlm.sbatch with 2 tasks runs a tiny 2-iteration
#    `srlm run` to completion (job state COMPLETED) and writes the same files as
#    the same run started directly with mpirun;
#  - a job requeued mid-run (scontrol requeue) resumes its run directory and
#    ends with the same files as an uninterrupted run.
# Changes the machine (starts Slurm daemons): runs only with SRLM_SYSTEM_TESTS=1,
# as root, with slurm-wlm and munge installed (.ci/run installs them).
set -u
if [ "${SRLM_SYSTEM_TESTS:-0}" != 1 ]; then echo "SKIPPED: set SRLM_SYSTEM_TESTS=1 to run (starts Slurm daemons)"; exit 77; fi
for t in slurmctld slurmd munged sbatch scontrol; do
  command -v $t > /dev/null || { echo "SKIPPED: $t not installed (apt-get install slurm-wlm munge)"; exit 77; }
done
[ "$(id -u)" = 0 ] || { echo "SKIPPED: the private cluster runs its daemons as root"; exit 77; }
bin="$SRLM_BIN"
fx="$SRLM_FIXTURES"
src="$SRLM_SOURCE_DIR"
work="$SRLM_TMP/slurm"
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
. "$src/tests/system/slurm_cluster.sh"
trap 'slurm_stop "$work"' EXIT
slurm_start "$work" || { echo "FAIL: could not start the private Slurm cluster"; exit 1; }
echo "slurm: $(sinfo -h -o '%P %a %D %t %c')"

# the loop test's fixture M1 and config, tp 1: 2 tasks = 2 worker groups
. "$src/tests/fixtures/loop/setup.sh"
loop_fixture_m1 "$work" || exit 1
loop_fixture_config loop.yaml "$work" 300 1 2
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 SRLM_BIN="$bin"
submit() { sbatch --parsable --nodes=1 --ntasks-per-node=2 --cpus-per-task=1 --chdir="$work" \
             --output="$work/job-%j.out" "$src/launch/slurm/srlm.sbatch" "$work/loop.yaml" "$@"; }
same_files() { # $1, $2: run folders; everything but timings and names
  diff -r -x config.yaml -x state.json -x summary.json -x provenance.json -x metrics.jsonl -x 'step-*' -x train \
       "$1" "$2" > /dev/null 2>&1
}

# ---- a plain job ----
mpirun -np 2 --oversubscribe "$bin" run loop.yaml run.name=direct --quiet 2> direct.log \
  || fail "direct mpirun run exited $?"
jid=$(submit run.name=plain) || { echo "FAIL: sbatch refused the job"; exit 1; }
state=$(slurm_wait "$jid" 300)
echo "job $jid: $state"
[ "$state" = COMPLETED ] || fail "job $jid ended $state: $(tail -3 job-$jid.out)"
grep -q '"stage": "done"' runs/plain/state.json 2>/dev/null || fail "the job's run did not finish"
ls logs/$jid/1/rank.0/stderr logs/$jid/1/rank.1/stderr > /dev/null 2>&1 || fail "no per-rank logs under logs/$jid"
same_files runs/plain runs/direct || fail "the Slurm job's files differ from the direct mpirun run's"

# ---- requeued mid-run: resumes, same files as uninterrupted ----
long="self_instruct.prompts_per_iteration=96"
mpirun -np 2 --oversubscribe "$bin" run loop.yaml run.name=long-direct $long --quiet 2> long-direct.log \
  || fail "direct long run exited $?"
jid=$(submit run.name=long $long) || { echo "FAIL: sbatch refused the job"; exit 1; }
stage=""
for _ in $(seq 240); do
  stage=$(sed -n 's/.*"stage": "\([a-z0-9-]*\)".*/\1/p' runs/long/state.json 2>/dev/null)
  [ "$stage" = judgements ] || [ "$stage" = pairs ] && break
  sleep 0.5
done
echo "requeue at stage '$stage'"
scontrol requeue "$jid" || fail "scontrol requeue $jid failed"
# Slurm holds a requeued batch job for about 2 minutes (Reason=BeginTime): release it now
for _ in $(seq 60); do
  scontrol show job "$jid" | grep -q "JobState=PENDING" && break
  sleep 0.5
done
scontrol update JobId="$jid" StartTime=now || fail "could not bring the requeued job forward"
state=$(slurm_wait "$jid" 400)
restarts=$(scontrol show job "$jid" | sed -n 's/.*Restarts=\([0-9]*\).*/\1/p')
echo "job $jid: $state after $restarts restart(s)"
[ "$state" = COMPLETED ] || fail "requeued job ended $state: $(tail -3 job-$jid.out)"
[ "${restarts:-0}" -ge 1 ] || fail "the job was not restarted (Restarts=$restarts)"
grep -q "resuming\|already complete" job-$jid.out logs/$jid/1/rank.0/stderr 2>/dev/null \
  || echo "note: no 'resuming' line found (the requeue may have hit a phase boundary)"
same_files runs/long runs/long-direct || fail "the requeued job's files differ from an uninterrupted run's"

[ $fails = 0 ] && echo "all checks passed" || echo "$fails check(s) failed"
exit $fails
