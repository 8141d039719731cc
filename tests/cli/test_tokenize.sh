#!/usr/bin/env bash
# srlm tokenize / detokenize against SentencePiece's own tools: a model trained
# here with spm_train; every corpus line must give spm_encode's ids and come
# back byte for byte; errors exit 2 with a message naming the culprit.
set -u
: "${SRLM_BIN:?}" "${SRLM_TMP:?}" "${SRLM_SOURCE_DIR:?}"
for tool in spm_train spm_encode spm_decode; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "SKIPPED: $tool not installed (Debian package 'sentencepiece')"
    exit 77
  fi
done

dir="$SRLM_TMP/cli_tokenize"
rm -rf "$dir" && mkdir -p "$dir" || exit 1
corpus="$SRLM_SOURCE_DIR/tests/data/tokenizer-corpus.txt"
model="$dir/m.model"
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

# Llama-2-like settings (see tests/unit/test_tokenizer.c); exact round trips need
# the identity normalizer and remove_extra_whitespaces=false.
spm_train --input="$corpus" --model_prefix="$dir/m" --vocab_size=700 --model_type=bpe \
  --byte_fallback=true --character_coverage=0.99 --normalization_rule_name=identity \
  --remove_extra_whitespaces=false --split_digits=true --minloglevel=2 >"$dir/train.log" 2>&1 \
  || { cat "$dir/train.log"; exit 1; }

# 1. Every line: our ids == spm_encode's; detokenize gives the line back exactly.
spm_encode --model="$model" --output_format=id <"$corpus" >"$dir/ref.ids"
: >"$dir/ours.ids"
: >"$dir/back.txt"
while IFS= read -r line; do
  ids=$(printf '%s' "$line" | "$SRLM_BIN" tokenize --tokenizer "$model") || fail "tokenize: $line"
  printf '%s\n' "$ids" >>"$dir/ours.ids"
  { printf '%s' "$ids" | "$SRLM_BIN" detokenize --tokenizer "$model" || fail "detokenize: $ids"
    printf '\n'; } >>"$dir/back.txt"
done <"$corpus"
cmp -s "$dir/ours.ids" "$dir/ref.ids" || { fail "ids differ from spm_encode"; diff "$dir/ours.ids" "$dir/ref.ids" | head -20; }
cmp -s "$dir/back.txt" "$corpus" || { fail "per-line round trip differs"; diff "$dir/back.txt" "$corpus" | head -20; }

# 2. spm_decode of spm's ids == our detokenize of the same ids (line by line).
spm_decode --model="$model" --input_format=id <"$dir/ref.ids" >"$dir/spm_back.txt"
cmp -s "$dir/spm_back.txt" "$dir/back.txt" || fail "detokenize differs from spm_decode"

# 3. The whole file at once (newlines, blank lines): exact round trip.
"$SRLM_BIN" tokenize --tokenizer "$model" <"$corpus" >"$dir/whole.ids" || fail "tokenize whole file"
[ "$(wc -l <"$dir/whole.ids")" -eq 1 ] || fail "tokenize should print one line"
"$SRLM_BIN" detokenize --tokenizer "$model" <"$dir/whole.ids" >"$dir/whole.txt" || fail "detokenize whole file"
cmp -s "$dir/whole.txt" "$corpus" || fail "whole-file round trip differs"

# 4. --bos/--eos: the output format is exactly spm_encode's (single spaces, one newline).
printf 'Hello world' | "$SRLM_BIN" tokenize --tokenizer "$model" --bos --eos >"$dir/be.ids"
printf 'Hello world\n' | spm_encode --model="$model" --output_format=id --extra_options=bos:eos >"$dir/be.ref"
cmp -s "$dir/be.ids" "$dir/be.ref" || fail "--bos --eos: $(cat "$dir/be.ids") vs $(cat "$dir/be.ref")"
# BOS/EOS decode to nothing, and no newline is added.
out=$("$SRLM_BIN" detokenize --tokenizer "$model" <"$dir/be.ids" | od -An -c | tr -s ' ')
[ "$out" = " H e l l o w o r l d" ] || fail "detokenize with BOS/EOS gave '$out'"
# Empty input: an empty id line; no ids: no text.
[ "$(printf '' | "$SRLM_BIN" tokenize --tokenizer "$model" | od -An -c | tr -d ' ')" = '\n' ] || fail "empty tokenize"
[ -z "$(printf '  \n' | "$SRLM_BIN" detokenize --tokenizer "$model")" ] || fail "empty detokenize"

# 5. Errors: exit 2 and a message naming the culprit.
expect_error() {  # expect_error NEEDLE CMD... (stdin from the caller)
  local needle=$1; shift
  "$@" >"$dir/err.out" 2>"$dir/err.txt"
  local rc=$?
  [ $rc -eq 2 ] || fail "exit $rc (expected 2): $*"
  grep -qF -- "$needle" "$dir/err.txt" || fail "message lacks '$needle': $(cat "$dir/err.txt")"
}
echo hi | expect_error "$dir/missing.model" "$SRLM_BIN" tokenize --tokenizer "$dir/missing.model"
echo 1 | expect_error "$dir/missing.model" "$SRLM_BIN" detokenize --tokenizer "$dir/missing.model"
echo garbage >"$dir/garbage.model"
echo hi | expect_error "$dir/garbage.model" "$SRLM_BIN" tokenize --tokenizer "$dir/garbage.model"
echo hi | expect_error "--tokenizer" "$SRLM_BIN" tokenize
echo "5 12x 7" | expect_error "'12x' at position 1" "$SRLM_BIN" detokenize --tokenizer "$model"
echo "5 6 99999" | expect_error "99999 at position 2" "$SRLM_BIN" detokenize --tokenizer "$model"
echo "-1" | expect_error "-1 at position 0" "$SRLM_BIN" detokenize --tokenizer "$model"
echo "99999999999999999999" | expect_error "position 0" "$SRLM_BIN" detokenize --tokenizer "$model"
[ ! -s "$dir/err.out" ] || fail "nothing should be written to stdout on error"
"$SRLM_BIN" tokenize --help | grep -q -- "--tokenizer FILE" || fail "tokenize --help"

# 6. --chat with the real Llama-2 tokenizer: <s> [INST] ... [/INST] ids.
llama="${SRLM_SHARED_DIR:-}/data/llama2/tokenizer.model"
if [ -f "$llama" ]; then
  ids=$(printf 'What is 2+2?\n' | "$SRLM_BIN" tokenize --tokenizer "$llama" --chat) || fail "--chat"
  ref=$(printf '[INST] What is 2+2? [/INST]\n' | spm_encode --model="$llama" --output_format=id)
  [ "$ids" = "1 $ref" ] || fail "--chat: '$ids' vs '1 $ref'"
  case "$ids" in "1 518 25580 29962 "*" 518 29914 25580 29962") ;; *) fail "--chat ids '$ids'" ;; esac
else
  echo "SKIPPED (part): $llama absent; --chat with Llama-2 not checked"
fi

if [ $fails -ne 0 ]; then echo "$fails check(s) failed" >&2; exit 1; fi
echo "all checks passed"
