#!/usr/bin/env bash
# A Mistral checkpoint (model_type "mistral", transformers' MistralForCausalLM;
# the tiny-mistral fixture has a sliding window of 21 positions). Its logits and
# greedy ids against transformers are in test_llama_parity and
# test_cli_score_generate; here the window's bounds, command by command:
#  - inspect names the model type and the window;
#  - generate stops a sequence at the window (finish_reason "length"), its ids
#    the reference's as far as that has them; a prompt past the window gets no
#    tokens and a warning while the call's other prompts are generated;
#  - score takes W + 1 tokens (the last is only a target: what generation
#    stops at) and refuses a longer record, naming it;
#  - sft refuses train.sft.max_seq_len past W + 1 at start-up, trains
#    within it, and writes the model back as a Mistral checkpoint (its window kept);
#  - srlm run refuses a train.dpo.max_seq_len past the window before it starts.
set -u
bin="$SRLM_BIN"
model="$SRLM_FIXTURES/llama/tiny-mistral"
work="$SRLM_TMP/mistral_sh"
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
. "$SRLM_SOURCE_DIR/tests/cli/lib.sh"  # why LOG

"$bin" inspect "$model" > inspect.txt 2>&1 || fail "inspect exited $?"
grep -q "model_type: mistral" inspect.txt && grep -q "sliding_window: 21" inspect.txt ||
  fail "inspect does not name the model type and window: $(head -3 inspect.txt)"

# "Score:" is 7 prompt ids; 30 new tokens asked, the window stops it at 15
# (the last one sampled from the logits at position 20, which attend to 21)
"$bin" generate --model "$model" --prompt "Score:" --max-new-tokens 30 --ignore-eos --print-ids --threads 1 \
  > gen.txt 2> gen.log || fail "generate exited $? ($(why gen.log))"
ids=$(tail -1 gen.txt)
n=$(echo "$ids" | wc -w)
[ "$n" = 15 ] || fail "generate: $n new tokens, expected 15 (the window of 21 less 7 prompt ids, plus one)"
want=$(sed 's/.*"new_ids": \[\([^]]*\)\].*/\1/' "$model/reference.json" | tr -d ',')
[ "$(echo "$ids" | cut -d' ' -f1-12)" = "$want" ] || fail "generate: ids $ids do not start with transformers' $want"
echo "generate: $n tokens, stopped at the window; the first 12 are transformers'"
printf '{"prompt": "Score:"}\n' > one.jsonl
"$bin" generate --model "$model" --input one.jsonl --output one_out.jsonl --max-new-tokens 30 --ignore-eos \
  --threads 1 2> one.log || fail "generate --input exited $?"
n=$(sed 's/.*"response_ids":\[\([^]]*\)\].*/\1/' one_out.jsonl | tr ',' ' ' | wc -w)
grep -q '"finish_reason":"length"' one_out.jsonl && [ "$n" = 15 ] ||
  fail "generate --input: $n tokens, expected 15 ending as length: $(cat one_out.jsonl)"
# a prompt past the window gets no tokens (finish_reason length) and a warning;
# the other prompts of the same call are generated as usual
ids30=$(seq 10 39 | paste -sd, -)
printf '{"prompt_ids": [%s]}\n{"prompt": "Score:"}\n' "$ids30" > mixed.jsonl
"$bin" generate --model "$model" --input mixed.jsonl --output mixed_out.jsonl --max-new-tokens 4 --threads 1 \
  2> mixed.log || fail "generate with one prompt past the window exited $? ($(why mixed.log))"
grep -q "request 0: 30 prompt tokens, more than the model's sliding_window of 21: no tokens generated" mixed.log ||
  fail "no warning for the prompt past the window: $(cat mixed.log)"
head -1 mixed_out.jsonl | grep -q '"response":"".*"response_ids":\[\].*"finish_reason":"length"' ||
  fail "the prompt past the window: $(head -1 mixed_out.jsonl)"
[ "$(sed -n 2p mixed_out.jsonl | sed 's/.*"response_ids":\[\([^]]*\)\].*/\1/' | tr ',' ' ' | wc -w)" -ge 1 ] ||
  fail "the prompt within the window got no tokens: $(sed -n 2p mixed_out.jsonl)"

# score: the last token is only a target, so W + 1 = 22 tokens are scored (the
# length generation stops at); 23 are refused
gen_ids=$(echo "$ids" | tr ' ' ,)
printf '{"prompt_ids": [1, 266, 283, 280, 274, 265, 301], "response_ids": [%s]}\n' "$gen_ids" > ok.jsonl
"$bin" score --model "$model" --input ok.jsonl > ok_score.jsonl 2> ok_score.log ||
  fail "score of the 22 tokens generation stopped at exited $? ($(why ok_score.log))"
printf '{"prompt_ids": [1, 266, 283, 280, 274, 265, 301, 5], "response_ids": [%s]}\n' "$gen_ids" > long.jsonl
"$bin" score --model "$model" --input long.jsonl > long_score.jsonl 2> long_score.log
rc=$?
[ "$rc" = 2 ] && grep -q "long.jsonl:1: prompt and response: 23 tokens, more than the 22 that the model's sliding_window of 21 allows" long_score.log ||
  fail "score past the window: exit $rc ($(why long_score.log))"

cat > sft.jsonl <<'D'
{"prompt_ids": [1, 266, 283, 280], "response_ids": [274, 265, 2]}
{"prompt_ids": [1, 301, 83], "response_ids": [136, 150, 2]}
D
cat > sft.yaml <<Y
run: {name: t, out_dir: $work/runs, seed: 3}
model: {path: $model, dtype: float32}
train:
  sft: {data: $work/sft.jsonl, lr: 0.003, batch_size: 2, micro_batch_size: 2, epochs: 3, max_seq_len: 64}
Y
"$bin" sft sft.yaml --quiet 2> sft_long.log
rc=$?
[ "$rc" = 2 ] && grep -q "train.sft.max_seq_len: 64 tokens, more than the 22 that the model's sliding_window of 21 allows" sft_long.log ||
  fail "sft with max_seq_len past the window: exit $rc ($(why sft_long.log))"
"$bin" sft sft.yaml --quiet train.sft.max_seq_len=22 2> sft.log || fail "sft within the window exited $? ($(why sft.log))"
cfg=runs/t/sft/model/config.json
grep -q '"model_type":[[:space:]]*"mistral"' "$cfg" && grep -q '"sliding_window":[[:space:]]*21' "$cfg" &&
  grep -q 'MistralForCausalLM' "$cfg" || fail "the trained model's config.json is not Mistral's: $(cat "$cfg")"
"$bin" score --model runs/t/sft/model --input ok.jsonl > /dev/null 2> trained_score.log ||
  fail "the trained Mistral model does not load back ($(why trained_score.log))"

# srlm run refuses a training length past the window at start-up (not after
# generating and judging), before it writes anything
. "$SRLM_SOURCE_DIR/tests/fixtures/loop/setup.sh"
loop_small_config run.yaml "$work/loop" "$model"
"$bin" run run.yaml --quiet train.dpo.max_seq_len=23 > run.log 2>&1
rc=$?
[ "$rc" = 2 ] && grep -q "train.dpo.max_seq_len: 23 tokens, more than the 22 that the model's sliding_window of 21 allows" run.log ||
  fail "srlm run with train.dpo.max_seq_len past the window: exit $rc ($(why run.log))"
[ -e loop/r ] && fail "srlm run wrote its run folder before refusing the window"

[ $fails = 0 ] && echo "mistral: all checks passed"
exit $((fails > 0))
