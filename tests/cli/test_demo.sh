#!/usr/bin/env bash
# srlm demo --quick: the whole demo path (seed data, tokenizer, random M0, SFT
# to M1, two self-rewarding iterations through srlm run, evaluation, table,
# plot) on a small model, twice with the same seed in two folders: the files
# are identical (deterministic for a seed); a rerun in place resumes without
# redoing anything; bad flags exit 2. The demo's effect itself is measured by
# benchmarks/demo (over seeds, on the full recipe), not here.
set -u
bin="$SRLM_BIN"
work="$SRLM_TMP/demo"
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
. "$SRLM_SOURCE_DIR/tests/cli/lib.sh"  # why LOG

"$bin" demo --quick --out "$work/a" --threads 1 --quiet > a.out 2> a.err || fail "demo exited $? ($(why a.err))"
cat a.out
for f in models/M2/model.safetensors models/M3/model.safetensors sft/model/tokenizer.model summary.json demo.svg \
         eval/M1/metrics.json eval/M3/metrics.json iter-2/summary.json data/judge_groups.jsonl; do
  [ -s "a/$f" ] || fail "missing $f"
done
grep -q "^M3 " a.out || fail "no row for M3 in the table"
grep -q "own agree" a.out || fail "no column for the judge's agreement on its own answers"
grep -q "^M1 -> M3: held-out accuracy" a.out || fail "no closing line"
grep -q "<svg" a/demo.svg && grep -q "held-out accuracy" a/demo.svg && grep -q "</svg>" a/demo.svg \
  || fail "demo.svg is not the plot"
# judgements parse: the quick M1 is tiny, but some must
valid=$(cat a/iter-1/judgements/part-*.jsonl | grep -c '"valid":true')
[ "$valid" -gt 0 ] || fail "no judgement of iteration 1 parsed"

# the same seed in another folder: the same files
"$bin" demo --quick --out "$work/b" --threads 1 --quiet > b.out 2> b.err || fail "second demo exited $?"
for f in sft/model/model.safetensors models/M2/model.safetensors models/M3/model.safetensors \
         iter-1/judgements/part-00000.jsonl eval/M3/answers/part-00000.jsonl; do
  cmp -s "a/$f" "b/$f" || fail "$f differs between two runs with the same seed"
done
# pairs carry the tokenizer file's sha256, and SentencePiece stores its training
# paths in the file: compare the pairs without that field
strip() { sed 's/"tokenizer_sha256":"[0-9a-f]*"//' "$1"; }
cmp -s <(strip a/iter-2/pairs/part-00000.jsonl) <(strip b/iter-2/pairs/part-00000.jsonl) \
  || fail "iteration-2 pairs differ between two runs with the same seed"
diff <(grep "^M[0-9]" a.out | awk '{print $1, $2, $3, $4, $5, $6}') \
     <(grep "^M[0-9]" b.out | awk '{print $1, $2, $3, $4, $5, $6}') > /dev/null \
  || fail "the tables differ between two runs with the same seed"

# rerun in place: everything is complete, nothing is trained again
"$bin" demo --quick --out "$work/a" --threads 1 > c.out 2> c.err || fail "rerun exited $?"
grep -q "sft step\|dpo step" c.err && fail "the rerun trained again"
diff <(grep "^M[0-9]" a.out | awk '{print $1, $2, $3}') <(grep "^M[0-9]" c.out | awk '{print $1, $2, $3}') > /dev/null \
  || fail "the rerun's table differs"

"$bin" demo --iterations 0 > bad.out 2>&1; rc=$?
[ $rc = 2 ] && grep -q "iterations" bad.out || fail "--iterations 0: exit $rc, $(why bad.out)"

# key=value changes the loop's config: a bad one is refused before any work
"$bin" demo --out "$work/bad" judge.temperature=-1 > bad.out 2>&1; rc=$?
[ $rc = 2 ] && grep -q "judge.temperature" bad.out && [ ! -e "$work/bad/sft" ] \
  || fail "judge.temperature=-1: exit $rc, $(why bad.out)"
"$bin" demo --out "$work/bad" no.such_key=1 > bad.out 2>&1; rc=$?
[ $rc = 2 ] && grep -q "no.such_key" bad.out || fail "no.such_key=1: exit $rc, $(why bad.out)"
# a change on resume is refused, like srlm run's
"$bin" demo --quick --out "$work/a" --threads 1 --quiet loop.min_score_gap=2 > bad.out 2>&1; rc=$?
[ $rc = 2 ] && grep -qi "config" bad.out || fail "changed config on resume: exit $rc, $(tail -2 bad.out)"

"$bin" demo --out "$work/bad" loop.iterations=16 > bad.out 2>&1; rc=$?
[ $rc = 2 ] && grep -q "loop.iterations" bad.out && [ ! -e "$work/bad/sft" ] \
  || fail "loop.iterations=16: exit $rc, $(why bad.out)"
# loop.iterations=N is --iterations N: a finished run is extended and the table shows the new model
"$bin" demo --quick --out "$work/a" --threads 1 --quiet loop.iterations=3 > d.out 2> d.err \
  || fail "extending to 3 iterations exited $?: $(tail -2 d.err)"
grep -q "^M4 " d.out && grep -q "M1 -> M4" d.out || fail "the table of an extended run lacks M4: $(tail -2 d.out)"

[ $fails = 0 ] && echo "all checks passed" || echo "$fails check(s) failed"
exit $fails
