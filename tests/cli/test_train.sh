#!/usr/bin/env bash
# srlm sft / srlm dpo end to end on the tiny-gqa fixture model:
#  - SFT learns a small dataset (final loss below a threshold);
#  - k steps + stop + resume + N-k steps give bitwise the weights of N steps;
#  - DPO raises the chosen-vs-rejected margin on held-out pairs of the same kind
#    (measured with `srlm score` before and after);
#  - bad inputs: exit 2 with the file and line; skipped examples are counted;
#    non-finite steps stop the run after max_bad_steps with exit 1.
set -u
bin="$SRLM_BIN"
model="$SRLM_FIXTURES/llama/tiny-gqa"
work="$SRLM_TMP/train_sh"
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
. "$SRLM_SOURCE_DIR/tests/cli/lib.sh"  # why LOG

# ---- SFT data: a few prompt -> response facts to memorise ----
cat > sft.jsonl <<'D'
{"prompt": "Count to three.", "response": "one two three"}
{"prompt": "Say the first letters.", "response": "a b c d"}
{"prompt": "Name a color.", "response": "blue"}
{"prompt": "Capital of France?", "response": "Paris"}
{"prompt": "What do cats say?", "response": "meow"}
{"prompt": "Two plus two?", "response": "four"}
D
cat > sft.yaml <<Y
run: {name: t, out_dir: $work/runs, seed: 3}
model: {path: $model, dtype: float32}
train:
  sft: {data: $work/sft.jsonl, lr: 0.003, lr_min: 0.0003, batch_size: 4, micro_batch_size: 3,
        epochs: 40, dropout: 0.1, checkpoint_every: 4, warmup_steps: 2}
Y
"$bin" sft sft.yaml --quiet 2> sft.log || fail "sft exited $? ($(why sft.log))"
last_loss=$(tail -1 runs/t/sft/metrics.jsonl | sed 's/.*"loss": \([^,]*\),.*/\1/')
first_loss=$(head -1 runs/t/sft/metrics.jsonl | sed 's/.*"loss": \([^,]*\),.*/\1/')
echo "sft: loss $first_loss -> $last_loss"
awk -v a="$last_loss" 'BEGIN { exit !(a < 0.3) }' || fail "sft did not learn: final loss $last_loss (want < 0.3)"
[ "$(wc -l < runs/t/sft/metrics.jsonl)" = 60 ] || fail "metrics.jsonl should have 60 lines"
[ -f runs/t/sft/model/model.safetensors ] && [ -f runs/t/sft/model/config.json ] && [ -f runs/t/sft/model/tokenizer.model ] \
  || fail "sft did not write an HF checkpoint with its tokenizer"

# ---- resume: 7 steps, stop; 9 more, stop; the rest: same bits as one go ----
mv runs/t/sft full
"$bin" sft sft.yaml --quiet --stop-after 7 2>/dev/null; rc=$?
[ $rc = 75 ] || fail "--stop-after should exit 75, got $rc"
"$bin" sft sft.yaml --quiet --stop-after 9 2>/dev/null; rc=$?
[ $rc = 75 ] || fail "second --stop-after should exit 75, got $rc"
# as a run killed while writing its metrics or a checkpoint's state would leave them
printf '{"half' > runs/t/sft/.metrics.jsonl.tmp-Ab12Cd
step=$(ls -d runs/t/sft/train/step-* 2>/dev/null | tail -1)
[ -n "$step" ] && printf '{"half' > "$step/.state.json.tmp-Zx98Yw" || fail "no checkpoint after --stop-after 9"
"$bin" sft sft.yaml --quiet 2>/dev/null || fail "resumed sft failed"
left=$(find runs/t/sft -name '.*.tmp-*')
[ -z "$left" ] && echo "resume: temporary files of killed writers removed" || fail "temporary files left: $left"
cmp -s full/model/model.safetensors runs/t/sft/model/model.safetensors \
  && echo "resume: bitwise identical weights" || fail "resumed weights differ from an uninterrupted run"
cmp -s full/metrics.jsonl runs/t/sft/metrics.jsonl || \
  diff <(sed 's/"time_s": [^}]*//' full/metrics.jsonl) <(sed 's/"time_s": [^}]*//' runs/t/sft/metrics.jsonl) > /dev/null \
  || fail "resumed metrics differ from an uninterrupted run"
ls runs/t/sft/train | grep -q tmp && fail "a temporary checkpoint folder was left behind"
[ "$(ls runs/t/sft/train | wc -l)" -le 2 ] || fail "keep_last_n (2) not honoured: $(ls runs/t/sft/train)"

# ---- DPO: prefer "yes, gladly" over "no way"; held-out prompts of the same kind ----
for p in "Can you help me?" "Will you write a poem?" "Could you explain this?" "Would you sort these?" \
         "Can you translate this?" "Will you check my code?" "Could you summarise it?" "Would you count them?"; do
  echo "{\"prompt\": \"$p\", \"chosen\": \"yes, gladly\", \"rejected\": \"no way\"}"
done > pairs.jsonl
echo '{"prompt": "Same text?", "chosen": "x", "rejected": "x"}' >> pairs.jsonl
for p in "Can you read this?" "Will you draw a map?" "Could you list them?"; do
  echo "{\"prompt\": \"$p\", \"response\": \"yes, gladly\"}" >> heldout_c.jsonl
  echo "{\"prompt\": \"$p\", \"response\": \"no way\"}" >> heldout_r.jsonl
done
margin() { # mean over held-out prompts of logp(chosen) - logp(rejected) under model $1
  paste -d' ' <("$bin" score --model "$1" --input heldout_c.jsonl | sed 's/.*"logp": \([^,]*\),.*/\1/') \
              <("$bin" score --model "$1" --input heldout_r.jsonl | sed 's/.*"logp": \([^,]*\),.*/\1/') |
    awk '{ s += $1 - $2; n++ } END { printf "%.4f", s / n }'
}
before=$(margin full/model)
cat > dpo.yaml <<Y
run: {name: t, out_dir: $work/runs, seed: 3}
model: {path: $work/full/model, dtype: float32}
train:
  dpo: {data: $work/pairs.jsonl, lr: 0.001, lr_min: 0.0001, batch_size: 4, micro_batch_size: 2,
        epochs: 3, dropout: 0.0, beta: 0.1}
Y
"$bin" dpo dpo.yaml --quiet 2> dpo.log || fail "dpo exited $? ($(why dpo.log))"
grep -q "1 chosen == rejected" dpo.log || fail "the chosen == rejected pair was not reported as skipped: $(head -1 dpo.log)"
after=$(margin runs/t/dpo/model)
echo "dpo: held-out margin $before -> $after"
awk -v a="$before" -v b="$after" 'BEGIN { exit !(b > a + 1.0) }' || fail "DPO did not raise the held-out margin ($before -> $after)"
grep -q '"rewards/accuracies"' runs/t/dpo/metrics.jsonl || fail "DPO metrics lack TRL's reward fields"
[ "$(wc -l < runs/t/dpo/reference_logps.jsonl)" = 8 ] || fail "reference log-probs not stored for 8 pairs"

# ---- gradient accumulation: 4 micro-batches of 1 = one micro-batch of 4 ----
# Not bitwise (sums change order), so compare the models' log-probs on the data:
# the two runs must agree far more closely than either agrees with the start.
logps() { "$bin" score --model "$1" --input sft.jsonl | sed 's/.*"logp": \([^,]*\),.*/\1/'; }
for mb in 1 4; do
  "$bin" sft sft.yaml --quiet run.name=acc$mb train.sft.micro_batch_size=$mb train.sft.epochs=2 \
    train.sft.dropout=0 2>/dev/null || fail "sft with micro_batch_size=$mb failed"
done
paste -d' ' <(logps runs/acc1/sft/model) <(logps runs/acc4/sft/model) <(logps "$model") |
  awk '{ d = $1 - $2; if (d < 0) d = -d; m = $1 - $3; if (m < 0) m = -m;
         if (d > dmax) dmax = d; mv += m; n++ }
       END { printf "accumulation: max |logp(mb=1) - logp(mb=4)| %.2e, mean change from start %.2f\n", dmax, mv / n;
             exit !(dmax < 1e-3 && mv / n > 1) }' || fail "micro-batch accumulation differs from one large batch"
# micro_batch_tokens: up to 4 examples but at most 100 tokens a micro-batch
# (the examples are 35-45 tokens: two each); the activations hold 100 rows
# instead of 4 x the longest example, so a micro-batch over the cap would stop
# the run ("more than the activation buffers' 100 rows"); the model must be the
# one accumulation gives
"$bin" sft sft.yaml run.name=acct train.sft.micro_batch_size=4 train.sft.micro_batch_tokens=100 \
  train.sft.max_seq_len=64 train.sft.epochs=2 train.sft.dropout=0 --quiet 2> acct.log ||
  fail "sft with micro_batch_tokens=100 failed: $(why acct.log)"
grep -q "6 examples, .*micro-batches of up to 4 and 100 tokens; activations for 100 tokens" acct.log ||
  fail "the token cap is not in the start line: $(grep examples acct.log)"
paste -d' ' <(logps runs/acc4/sft/model) <(logps runs/acct/sft/model) |
  awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > dmax) dmax = d; n++ }
       END { printf "token cap: max |logp(mb=4) - logp(mb=4, 100 tokens)| %.2e over %d examples\n", dmax, n;
             exit !(n == 6 && dmax < 1e-4) }' || fail "micro-batches under a token cap differ from one large batch"
# DPO: 2 pairs a micro-batch vs at most 128 tokens (one pair of ~80 tokens):
# the reference log-probs and the trained model agree
"$bin" dpo dpo.yaml run.name=dpot train.dpo.micro_batch_tokens=128 train.dpo.max_seq_len=64 --quiet 2> dpot.log ||
  fail "dpo with micro_batch_tokens=128 failed: $(why dpot.log)"
grep -q "8 examples, .*micro-batches of up to 2 and 128 tokens; activations for 128 tokens" dpot.log ||
  fail "the DPO token cap is not in the start line: $(grep examples dpot.log)"
refs() { sed 's/.*chosen": \([^,]*\), .*rejected": \([^}]*\)}/\1 \2/' "$1"; }
# (sums of ~20 fp32 log-probs near -100: rows in other GEMM shapes round apart by ~3e-5)
paste -d' ' <(refs runs/t/dpo/reference_logps.jsonl) <(refs runs/dpot/dpo/reference_logps.jsonl) |
  awk '{ for (i = 1; i <= 2; i++) { d = $i - $(i + 2); if (d < 0) d = -d; if (d > dmax) dmax = d } n++ }
       END { printf "token cap: reference log-probs of %d pairs within %.2e\n", n, dmax; exit !(n == 8 && dmax < 1e-4) }' ||
  fail "reference log-probs under a token cap differ"
dm=$(margin runs/dpot/dpo/model)
awk -v a="$after" -v b="$dm" 'BEGIN { d = a - b; if (d < 0) d = -d; printf "token cap: dpo margin %s vs %s\n", b, a; exit !(d < 1e-2) }' ||
  fail "DPO under a token cap trained another model (margin $dm vs $after)"
expect_cap() { out=$("$bin" sft sft.yaml run.name=capbad "$@" 2>&1); rc=$?
  [ $rc = 2 ] && grep -q "micro_batch_tokens (63) is below train.sft.max_seq_len (64)" <<< "$out" ||
    fail "a cap below max_seq_len: exit $rc, $out"; }
expect_cap train.sft.micro_batch_tokens=63 train.sft.max_seq_len=64

# ---- bad inputs ----
expect() { # expect CODE NEEDLE -- command...
  local code=$1 needle=$2; shift 3
  local out; out=$("$@" 2>&1); local rc=$?
  [ $rc = "$code" ] || fail "$*: exit $rc, want $code ($out)"
  grep -qF -- "$needle" <<< "$out" || fail "$*: message lacks '$needle': $out"
}
printf '{"prompt": "a", "response": "b"}\n{"prompt": "a", "response": \n' > broken.jsonl
expect 2 "broken.jsonl:2" -- "$bin" sft sft.yaml "train.sft.data=$work/broken.jsonl" run.name=bad1
expect 2 "train.sft.data is empty" -- "$bin" sft sft.yaml train.sft.data= run.name=bad2
printf '{"prompt": "a", "response": ""}\n' > empty.jsonl
expect 2 "no usable examples" -- "$bin" sft sft.yaml "train.sft.data=$work/empty.jsonl" run.name=bad3
expect 2 "skipped" -- "$bin" sft sft.yaml train.sft.max_seq_len=4 run.name=bad4
expect 2 "unknown key" -- "$bin" sft sft.yaml train.sft.nope=1
# an absurd learning rate makes every step after the first non-finite
expect 1 "non-finite steps in a row" -- "$bin" sft sft.yaml train.sft.lr=1e30 train.sft.lr_min=0 \
  train.sft.warmup_steps=0 train.sft.grad_clip=0 train.sft.max_bad_steps=2 train.sft.checkpoint_every=1 \
  run.name=bad5 --quiet
grep -q '"loss": null' runs/bad5/sft/metrics.jsonl || fail "a non-finite loss must be written as null in metrics.jsonl"
[ "$(ls runs/bad5/sft/train)" = step-00000001 ] || fail "want only the last good checkpoint (step 1): $(ls runs/bad5/sft/train)"

[ $fails = 0 ] && echo "all checks passed" || { echo "$fails check(s) failed"; exit 1; }
