#!/usr/bin/env bash
# Launch srlm under Open MPI's mpirun: one rank per GPU (or per CPU socket share
# on CPU runs), the environment NCCL and Open MPI need, one log file per rank.
#
#   launch/srlm-mpirun.sh [-n RANKS] [-g RANKS_PER_NODE] [--hostfile FILE] [--logs DIR] -- run CONFIG [k=v ...]
#
# Everything after "--" is passed to srlm. The exit code is srlm's (75 =
# interrupted and resumable: run the same command again). SIGUSR1 and SIGTERM
# sent to this script reach every rank (mpirun forwards them); srlm stops at the
# next work item or training step and saves. Prefer USR1: mpirun follows a
# forwarded SIGTERM with SIGKILL after about a second.
#
# Environment (each may be set by the caller; defaults in brackets):
#   SRLM_BIN                 the srlm binary [srlm on PATH, else build/srlm next to this script]
#   OMP_NUM_THREADS          CPU threads per rank [cores of the node / ranks per node]
#   NCCL_DEBUG               NCCL's log level [WARN]; INFO prints the chosen transports
#   NCCL_IB_HCA, NCCL_SOCKET_IFNAME   which InfiniBand devices / IP interface NCCL uses
#                            [unset: NCCL picks]; set them when a node has several fabrics
#   NCCL_ASYNC_ERROR_HANDLING  [1] a failed collective aborts instead of hanging
#   OMPI_MCA_btl             Open MPI's transports for the host messages (work requests,
#                            CPU collectives) [unset]; e.g. "^openib" to silence a warning
#   CUDA_VISIBLE_DEVICES     NOT set here: srlm picks the GPU by its local rank
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
ranks="" per_node="" hostfile="" logs="logs/srlm-$(date +%Y%m%d-%H%M%S)"
while [ $# -gt 0 ]; do
  case "$1" in
    -n) ranks="$2"; shift 2 ;;
    -g) per_node="$2"; shift 2 ;;
    --hostfile) hostfile="$2"; shift 2 ;;
    --logs) logs="$2"; shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
    *) echo "srlm-mpirun: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ $# -gt 0 ] || { echo "srlm-mpirun: nothing to run: give srlm's arguments after --" >&2; exit 2; }
bin="${SRLM_BIN:-$(command -v srlm || echo "$here/../build/srlm")}"
[ -x "$bin" ] || { echo "srlm-mpirun: $bin is not an executable (set SRLM_BIN)" >&2; exit 2; }
cores=$(getconf _NPROCESSORS_ONLN)
if [ -z "$per_node" ]; then
  per_node=$(nvidia-smi -L 2>/dev/null | wc -l || true)
  [ "${per_node:-0}" -gt 0 ] || per_node=${ranks:-1}
fi
[ -n "$ranks" ] || ranks=$per_node
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(( cores / per_node > 0 ? cores / per_node : 1 ))}"
export NCCL_DEBUG="${NCCL_DEBUG:-WARN}" NCCL_ASYNC_ERROR_HANDLING="${NCCL_ASYNC_ERROR_HANDLING:-1}"
mkdir -p "$logs"
args=(-np "$ranks" --map-by "ppr:${per_node}:node" --bind-to none --output-filename "$logs"
      -x OMP_NUM_THREADS -x NCCL_DEBUG -x NCCL_ASYNC_ERROR_HANDLING)
for v in NCCL_IB_HCA NCCL_SOCKET_IFNAME SRLM_FAULT; do [ -n "${!v:-}" ] && args+=(-x "$v"); done
[ -n "$hostfile" ] && args+=(--hostfile "$hostfile")
[ "$(id -u)" = 0 ] && args+=(--allow-run-as-root)
[ "$ranks" -gt "$cores" ] && args+=(--oversubscribe)
echo "srlm-mpirun: $ranks ranks, $per_node per node, $OMP_NUM_THREADS threads each, logs in $logs" >&2
mpirun "${args[@]}" "$bin" "$@" &
child=$!
trap 'kill -USR1 $child 2>/dev/null' USR1
trap 'kill -TERM $child 2>/dev/null' TERM
# wait returns early when a trapped signal arrives: keep waiting for mpirun
while :; do
  wait "$child" && rc=0 || rc=$?
  kill -0 "$child" 2>/dev/null || break
done
exit "$rc"
