# A private one-node Slurm cluster for the system tests (sourced, not run):
# slurm_start WORKDIR writes WORKDIR/slurm/slurm.conf, starts munged (if not
# running), slurmctld and slurmd with that file, exports SLURM_CONF so sbatch,
# squeue and scontrol use it, and waits for the node to be idle; slurm_stop
# stops the daemons it started (by pid). Needs root (SlurmUser=root).
slurm_start() {
  local dir="$1/slurm" host
  host=$(hostname -s)
  mkdir -p "$dir/spool/ctld" "$dir/spool/d" "$dir/log"
  cat > "$dir/slurm.conf" <<C
ClusterName=srlmtest
SlurmctldHost=$host
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmUser=root
ReturnToService=2
MpiDefault=none
JobRequeue=1
KillWait=10
StateSaveLocation=$dir/spool/ctld
SlurmdSpoolDir=$dir/spool/d
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
NodeName=$host CPUs=$(getconf _NPROCESSORS_ONLN) State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
C
  export SLURM_CONF="$dir/slurm.conf"
  if ! pgrep -x munged > /dev/null; then
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    [ -s /etc/munge/munge.key ] || { mkdir -p /etc/munge && dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null \
                                     && chmod 400 /etc/munge/munge.key; }
    munged --force || return 1
  fi
  slurmctld -f "$SLURM_CONF" || return 1
  slurmd -f "$SLURM_CONF" || return 1
  for _ in $(seq 60); do
    sinfo -h -o %t 2>/dev/null | grep -q idle && return 0
    sleep 1
  done
  echo "slurm_start: the node did not become idle:"; sinfo; tail -5 "$dir/log/slurmctld.log"
  return 1
}

slurm_stop() {
  local dir="$1/slurm" f
  for f in slurmd slurmctld; do
    [ -f "$dir/$f.pid" ] && kill "$(cat "$dir/$f.pid")" 2>/dev/null
  done
  sleep 1
}

# slurm_wait JOBID TIMEOUT: wait until the job has left the queue; prints its final state.
slurm_wait() {
  local id="$1" t="$2" state=""
  for _ in $(seq "$t"); do
    state=$(scontrol show job "$id" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p')
    case "$state" in COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY) echo "$state"; return 0 ;; esac
    sleep 1
  done
  echo "TIMEOUT_WAITING($state)"
}
