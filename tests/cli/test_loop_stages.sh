#!/usr/bin/env bash
# srlm run on one rank, the stages before the iterations and the variants:
#  - EFT built by the pipeline: M0 -> SFT baseline -> judgements of the ranked
#    groups -> EFT kept where the score order agrees with the human one ->
#    M1 = SFT on IFT + EFT (the fixture groups: a 3-word reply ranked above a
#    1-word one, which a judge scoring "words + 1" agrees with);
#  - the paper's other feedback variant (loop.sft_on_top_scores): the
#    candidates scored 5 become SFT data;
#  - bad configs: no seed data, build_eft without groups (exit 2, messages).
set -u
bin="$SRLM_BIN"
fx="$SRLM_FIXTURES"
work="$SRLM_TMP/loop_stages"
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
. "$SRLM_SOURCE_DIR/tests/cli/lib.sh"  # why LOG

cat > run.yaml <<Y
run: {name: eft, out_dir: $work/runs, seed: 11, watchdog_s: 0}
model: {path: $fx/llama/tiny-gqa, dtype: float32}
backend: {threads: 1}
generate: {samples: 4, temperature: 1.0, max_new_tokens: 10, kv_cache_mb: 16}
judge: {samples: 2, max_new_tokens: 12, template: $fx/loop/judge.txt}
self_instruct: {prompts_per_iteration: 8, shots_ift: 2, shots_generated: 1, max_new_tokens: 16, min_words: 1,
                template: $fx/loop/self_instruct.txt}
loop: {iterations: 1, build_eft: true, prompts_per_item: 4}
data: {ift: $fx/loop/sft_m1.jsonl, eft_groups: $fx/loop/heldout.jsonl}
eval: {heldout: $fx/loop/heldout.jsonl}
train:
  sft: {lr: 0.003, lr_min: 0.0003, batch_size: 16, micro_batch_size: 16, epochs: 12, dropout: 0.0,
        max_seq_len: 128, checkpoint_every: 1000}
  dpo: {lr: 0.0003, lr_min: 0.00003, batch_size: 4, micro_batch_size: 4, epochs: 1, dropout: 0.0, max_seq_len: 128}
Y
"$bin" run run.yaml --quiet 2> eft.log || fail "run with EFT building exited $? ($(grep error eft.log | head -1))"
r=runs/eft
for f in models/SFT-baseline/model.safetensors eft/judgements/part-00000.jsonl.done eft/eft.jsonl eft/eft.jsonl.done \
         eft/summary.json sft-m1/data.jsonl models/M1/model.safetensors models/M2/model.safetensors iter-1/summary.json; do
  [ -s "$r/$f" ] || fail "missing $f"
done
kept=$(sed -n 's/.*"groups_kept":[[:space:]]*\([0-9]*\).*/\1/p' $r/eft/summary.json)
examples=$(wc -l < $r/eft/eft.jsonl)
echo "eft: $kept groups kept, $examples examples"
[ "${kept:-0}" -ge 1 ] || fail "no ranked group agreed with the baseline judge: $(tr -d '\n\t' < $r/eft/summary.json)"
[ "$examples" -ge 2 ] || fail "EFT has $examples examples"
grep -q '"prompt":"Rate: do ' $r/eft/eft.jsonl || fail "EFT prompts are not rendered judge prompts"
grep -q '"response":"Score: [0-5]"' $r/eft/eft.jsonl || fail "EFT responses are not judgements"
ift=$(wc -l < $fx/loop/sft_m1.jsonl)
[ "$(wc -l < $r/sft-m1/data.jsonl)" = $((ift + examples)) ] || fail "M1's data is not IFT + EFT"

# ---- the SFT variant, from this run's M1 ----
"$bin" run run.yaml run.name=top model.path=$work/$r/models/M1 loop.skip_sft=true loop.sft_on_top_scores=true \
  generate.max_new_tokens=24 --quiet 2> top.log || fail "sft_on_top_scores run exited $? ($(grep error top.log | head -1))"
top=$(cat runs/top/iter-1/judgements/part-*.jsonl | grep -c '"score":5')
n=$(wc -l < runs/top/iter-1/train-data.jsonl)
echo "sft_on_top_scores: $n training examples"
[ -s runs/top/models/M2/model.safetensors ] || fail "the SFT variant made no M2"
[ "$top" -ge "$n" ] || fail "$n SFT examples but only $top judgements scored 5"

# ---- the reference log-probs in groups under train.dpo.micro_batch_tokens ----
# (128 tokens: 2 x max_seq_len 64; an item's 4 pairs of 45-60 tokens go in
# twos); the same pairs as without the cap, the same values up to rounding
refs() { cat runs/$1/iter-1/pairs/part-*.jsonl | sed 's/.*"ref_logp_chosen":\([^,]*\),"ref_logp_rejected":\([^,]*\),.*/\1 \2/'; }
for v in refa refb; do
  cap=; [ $v = refb ] && cap=train.dpo.micro_batch_tokens=128
  "$bin" run run.yaml run.name=$v model.path=$work/$r/models/M1 loop.skip_sft=true train.dpo.max_seq_len=64 $cap \
    --quiet 2> $v.log ||
    fail "$v run exited $? ($(grep error $v.log | head -1))"
done
paste -d' ' <(refs refa) <(refs refb) |
  awk '{ for (i = 1; i <= 2; i++) { if ($i == "null") { nul++; continue } d = $i - $(i + 2); if (d < 0) d = -d; if (d > dmax) dmax = d; k++ } n++ }
       END { printf "reference log-probs: %d pairs, %d values, capped vs not within %.2e\n", n, k, dmax; exit !(n >= 2 && k >= 2 && dmax < 1e-4) }' ||
  fail "the loop's reference log-probs under train.dpo.micro_batch_tokens differ (or too few pairs)"

# ---- bad configs ----
"$bin" run run.yaml run.name=bad data.ift= --quiet > bad1.log 2>&1; rc=$?
[ $rc = 2 ] && grep -q "no seed data" bad1.log || fail "missing seed data: exit $rc, $(why bad1.log)"
"$bin" run run.yaml run.name=bad2 data.eft_groups= --quiet > bad2.log 2>&1; rc=$?
[ $rc = 2 ] && grep -q "no ranked groups" bad2.log || fail "build_eft without groups: exit $rc, $(why bad2.log)"

[ $fails = 0 ] && echo "all checks passed" || echo "$fails check(s) failed"
exit $fails
