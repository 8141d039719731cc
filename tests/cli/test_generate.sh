#!/usr/bin/env bash
# srlm generate --input: candidates JSONL with the fields of DESIGN.md, in
# (prompt, sample) order; the same file for batch 1, 3 and 32, with prefix
# sharing off and with prompts prefilled one a forward or a few together;
# greedy --prompt output; bad inputs exit 2 naming file and line.
set -u
bin="$SRLM_BIN"
model="$SRLM_FIXTURES/llama/tiny-gqa"
work="$SRLM_TMP/generate_sh"
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
cat > prompts.jsonl <<'D'
{"prompt": "Count to three.", "prompt_id": "p-count"}
{"prompt": "Name a color."}

{"prompt_ids": [1, 266, 305, 268, 285]}
D
gen() { "$bin" generate --model "$model" --input prompts.jsonl --samples 3 --temperature 0.8 --top-p 0.9 \
          --max-new-tokens 10 --seed 7 "$@" 2>/dev/null; }
gen --output out32.jsonl --batch 32 || fail "generate exited $?"
[ "$(wc -l < out32.jsonl)" = 9 ] || fail "want 9 lines (3 prompts x 3 samples), got $(wc -l < out32.jsonl)"
for key in prompt_id prompt_ids sample response response_ids finish_reason seed; do
  [ "$(grep -c "\"$key\":" out32.jsonl)" = 9 ] || fail "field $key missing from some lines"
done
head -1 out32.jsonl | grep -q '"prompt_id":"p-count","prompt":"Count to three."' || fail "prompt_id/prompt not passed through"
sed -n 4p out32.jsonl | grep -q '"prompt_id":"1"' || fail "default prompt_id should be the record index"
[ "$(sed 's/.*"sample":\([0-9]*\).*/\1/' out32.jsonl | tr -d '\n')" = 012012012 ] || fail "lines not in (prompt, sample) order"
for v in "--batch 1" "--batch 3" "--batch 32 --no-share-prefix" "--batch 2 --min-shared-prefix 2" \
         "--prefill-tokens 1" "--batch 32 --no-share-prefix --prefill-tokens 8" "--batch 2 --min-admit 2"; do
  gen --output other.jsonl $v || fail "generate $v exited $?"
  cmp -s out32.jsonl other.jsonl && echo "identical with $v" || fail "output with $v differs from batch 32"
done
# the same run from a config (generate.*, run.seed, model.path), and its overrides
cat > gen.yaml <<Y
run: {seed: 7}
model: {path: $model}
generate: {samples: 3, temperature: 0.8, top_p: 0.9, max_new_tokens: 10}
Y
"$bin" generate gen.yaml --input prompts.jsonl --output cfg.jsonl 2>/dev/null || fail "generate CONFIG exited $?"
cmp -s out32.jsonl cfg.jsonl || fail "generate CONFIG differs from the same settings given as flags"
"$bin" generate gen.yaml generate.samples=2 --input prompts.jsonl --output cfg2.jsonl 2>/dev/null
[ "$(wc -l < cfg2.jsonl)" = 6 ] || fail "override generate.samples=2 not applied"
out=$("$bin" generate gen.yaml generate.nope=1 --input prompts.jsonl 2>&1); rc=$?
[ $rc = 2 ] && grep -q "unknown key 'generate.nope'" <<< "$out" || fail "unknown override: $rc $out"
gen --output seed8.jsonl --seed 8
cmp -s out32.jsonl seed8.jsonl && fail "another --seed gave the same samples"
# greedy single prompt equals transformers (the reference's new ids)
want=$(sed 's/.*"new_ids": \[\([^]]*\)\].*/\1/' "$model/reference.json" | tr -d ',')
got=$("$bin" generate --model "$model" --prompt "The capital of France is" --max-new-tokens 12 --ignore-eos \
        --print-ids 2>/dev/null | tail -1)
[ "$got" = "$want" ] || fail "greedy ids '$got', transformers '$want'"
# bad inputs
printf '{"prompt": "ok"}\n{"prompt": 3}\n' > bad.jsonl
out=$("$bin" generate --model "$model" --input bad.jsonl 2>&1); rc=$?
[ $rc = 2 ] && grep -q 'bad.jsonl:2: key "prompt": expected a string, found a number' <<< "$out" || fail "bad line: $rc $out"
out=$("$bin" generate --model "$model" --input prompts.jsonl --max-new-tokens 100000 --kv-cache-mb 1 2>&1); rc=$?
[ $rc = 2 ] && grep -q "kv-cache-mb" <<< "$out" || fail "KV cache too small: $rc $out"
# the log says how the prompts were prefilled: 3 distinct prompts together, or one a forward
"$bin" generate --model "$model" --input prompts.jsonl --samples 3 --output /dev/null 2> log.txt
grep -q "prefilled in 1 forwards" log.txt || fail "3 prompts not prefilled in one forward: $(cat log.txt)"
"$bin" generate --model "$model" --input prompts.jsonl --samples 3 --prefill-tokens 1 --output /dev/null 2> log.txt
grep -q "prefilled in 3 forwards" log.txt || fail "--prefill-tokens 1: not one prompt a forward: $(cat log.txt)"
out=$("$bin" generate --model "$model" --input prompts.jsonl --min-admit -1 2>&1); rc=$?
[ $rc = 2 ] && grep -q "min-admit: expected" <<< "$out" || fail "--min-admit -1: $rc $out"
out=$("$bin" generate --model "$model" --input prompts.jsonl --prefill-tokens -3 2>&1); rc=$?
[ $rc = 2 ] && grep -q "prefill-tokens: expected" <<< "$out" || fail "--prefill-tokens -3: $rc $out"
out=$("$bin" generate --model "$model" --prompt x --top-p 1.5 2>&1); rc=$?
[ $rc = 2 ] || fail "top-p 1.5 accepted: $rc $out"
out=$("$bin" generate --model "$model" 2>&1); rc=$?
[ $rc = 2 ] && grep -q "exactly one of --prompt" <<< "$out" || fail "no prompt: $rc $out"
[ $fails = 0 ] && echo "all checks passed" || { echo "$fails check(s) failed"; exit 1; }
