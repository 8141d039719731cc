#!/usr/bin/env bash
# One fuzz target's ctest (tests/fuzz/CMakeLists.txt), in one of two modes:
#
#   run_target.sh fuzz   HARNESS TARGET SRC_DIR WORK_DIR SECONDS RSS_MB
#       fuzzes a scratch copy of SRC_DIR/corpus/TARGET (the committed corpus stays
#       as it is) for SECONDS, with SRC_DIR/dict/TARGET.dict when there is one;
#       crash, leak, UB, timeout or out-of-memory reports go to
#       WORK_DIR/artifacts/TARGET/. Writes WORK_DIR/summary/TARGET.txt:
#       "TARGET: N execs, M s, corpus K files (S KB), result ok|crash".
#   run_target.sh replay HARNESS TARGET SRC_DIR WORK_DIR
#       runs every file of SRC_DIR/regressions/TARGET/ (the reproducers of fixed
#       bugs) and of SRC_DIR/corpus/TARGET/ once; fails if any crashes.
#
# Extra libFuzzer flags may come from SRLM_FUZZ_FLAGS (e.g. "-jobs=2" or
# "-max_len=8192"); SRLM_FUZZ_SECONDS overrides SECONDS.
set -uo pipefail
mode=$1 harness=$2 target=$3 src=$4 work=$5
corpus=$src/corpus/$target
regressions=$src/regressions/$target
mkdir -p "$work"

if [ "$mode" = replay ]; then
  files=()
  for dir in "$regressions" "$corpus"; do
    [ -d "$dir" ] || continue
    while IFS= read -r -d '' f; do files+=("$f"); done < <(find "$dir" -type f ! -name '.*' -print0 | sort -z)
  done
  if [ ${#files[@]} = 0 ]; then
    echo "SKIPPED: no files in $regressions or $corpus"
    exit 77
  fi
  echo "replaying ${#files[@]} file(s) of $target"
  # Files (not folders) as arguments: libFuzzer runs each once and exits.
  # -error_exitcode=1: libFuzzer's default, 77, is ctest's "skipped".
  "$harness" -error_exitcode=1 -rss_limit_mb=2048 -timeout=30 "${files[@]}" > "$work/replay-$target.log" 2>&1
  status=$?
  if [ $status != 0 ]; then
    tail -60 "$work/replay-$target.log"
    echo "$target: replay FAILED (exit status $status; log $work/replay-$target.log)"
  else
    echo "$target: ${#files[@]} file(s) replayed, ok"
  fi
  exit $status
fi

seconds=${SRLM_FUZZ_SECONDS:-$6}
rss=$7
scratch=$work/corpus/$target
artifacts=$work/artifacts/$target
log=$work/logs/$target.log
summary=$work/summary/$target.txt
rm -rf "$scratch"
mkdir -p "$scratch" "$artifacts" "$(dirname "$log")" "$(dirname "$summary")"
[ -d "$corpus" ] && cp -R "$corpus/." "$scratch/"
dict=()
[ -f "$src/dict/$target.dict" ] && dict=(-dict="$src/dict/$target.dict")
start=$(date +%s)
# shellcheck disable=SC2086
"$harness" -max_total_time="$seconds" -rss_limit_mb="$rss" -timeout=10 -error_exitcode=1 -print_final_stats=1 \
  -artifact_prefix="$artifacts/" "${dict[@]}" ${SRLM_FUZZ_FLAGS:-} "$scratch" > "$log" 2>&1
status=$?
elapsed=$(( $(date +%s) - start ))
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
[ -n "$execs" ] || execs=$(sed -n 's/^#\([0-9][0-9]*\).*/\1/p' "$log" | tail -1)
files=$(find "$scratch" -type f | wc -l)
kb=$(( ($(find "$scratch" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}') + 1023) / 1024 ))
result=ok
[ $status = 0 ] || result=crash
line="$target: ${execs:-0} execs, $elapsed s, corpus $files files ($kb KB), result $result"
echo "$line" > "$summary"
if [ $status != 0 ]; then
  tail -80 "$log"
  echo "artifacts: $(ls "$artifacts" 2>/dev/null | tr '\n' ' ')"
fi
echo "$line"
exit $status
