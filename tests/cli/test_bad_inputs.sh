#!/usr/bin/env bash
# The bad-input table (issue 10, item 4; DESIGN.md "Bad input"): every bad config,
# checkpoint, tokenizer, data file, template and number below must give exit 2 and
# exactly the expected message (the text after "srlm CMD: error: ": it names the
# file and place, what was expected and what was found), never a crash (exit >= 128,
# a sanitizer report) and never a silent accept (exit 0).
#
# The table is at the end: ID | EXIT | ARGUMENTS (shell words) | MESSAGE. $W is this
# test's scratch folder (the bad files are made there first), $M the fixture model.
# Rows run four at a time: sft/dpo/run start MPI, which takes seconds even alone.
set -u
: "${SRLM_BIN:?}" "${SRLM_FIXTURES:?}" "${SRLM_TMP:?}" "${SRLM_SOURCE_DIR:?}"
W="$SRLM_TMP/bad_inputs"
rm -rf "$W" && mkdir -p "$W/rows" && cd "$W" || exit 1
M="$SRLM_FIXTURES/llama/tiny-gqa"
. "$SRLM_SOURCE_DIR/tests/fixtures/loop/setup.sh"
OASST="$SRLM_SOURCE_DIR/tests/data/oasst-small.jsonl"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1

# ---- YAML configs ----
printf 'model:\n  path: /m\n  dtype: [float32\n' > y_syntax.yaml
printf 'model:\n  path: /m\nloop:\n  iteratons: 2\n' > y_unknown.yaml
printf 'model:\n  path: /m\nrun:\n  seed: 1.5\n' > y_type.yaml
printf 'model:\n  path: /m\ngenerate:\n  top_p: 1.5\n' > y_range.yaml
printf 'run:\n  seed: 1\n' > y_missing.yaml
printf 'model:\n  path: /m\ntrain:\n  sft:\n    lr_min: 1\n    lr: 0.001\n' > y_cross.yaml
printf 'model:\n  path: /m\ntrain:\n  sft:\n    lr: .nan\n' > y_nan.yaml
printf 'model:\n  path: /m\ngenerate:\n  samples: -3\n' > y_negative.yaml
printf 'model: /m\n' > y_mapping.yaml
printf 'model:\n  path: /m\n  path: /n\n' > y_duplicate.yaml
printf 'model:\n  path: /m\nloop:\n  iterations: 99999999999999999999\n' > y_huge.yaml

# ---- checkpoints: copies of the fixture model, each broken in one way ----
# (the safetensors edits keep the header's length, so only the named thing is wrong)
ckpt() { rm -rf "$1" && mkdir -p "$1" && cp "$M"/config.json "$M"/model.safetensors "$M"/tokenizer.model "$1"/; }
ckpt ck_noconfig && rm ck_noconfig/config.json
ckpt ck_json && printf '{"hidden_size": 64,\n' > ck_json/config.json
ckpt ck_type && sed -i 's/"hidden_size": 64/"hidden_size": "64"/' ck_type/config.json
ckpt ck_size && sed -i 's/"hidden_size": 64/"hidden_size": 128/' ck_size/config.json
ckpt ck_fewer && sed -i 's/"num_hidden_layers": 2/"num_hidden_layers": 1/' ck_fewer/config.json
ckpt ck_more && sed -i 's/"num_hidden_layers": 2/"num_hidden_layers": 3/' ck_more/config.json
ckpt ck_heads && sed -i 's/"num_attention_heads": 8/"num_attention_heads": 7/' ck_heads/config.json
ckpt ck_rope && sed -i 's/"rope_scaling": null/"rope_scaling": {"type": "linear", "factor": 2.0}/' ck_rope/config.json
ckpt ck_eps && sed -i 's/"rms_norm_eps": 1e-05/"rms_norm_eps": -1/' ck_eps/config.json
ckpt ck_theta && sed -i 's/"rope_theta": 10000.0/"rope_theta": 1e999/' ck_theta/config.json
ckpt ck_vocab && sed -i 's/"vocab_size": 320/"vocab_size": -320/' ck_vocab/config.json
ckpt ck_trunc && truncate -s 400000 ck_trunc/model.safetensors
ckpt ck_short && truncate -s 4 ck_short/model.safetensors
ckpt ck_hlen && printf '\xff\xff\xff\xff\x00\x00\x00\x00{}' > ck_hlen/model.safetensors
ckpt ck_offsets && sed -i 's/"data_offsets":\[0,81920\]/"data_offsets":[0,81924]/' ck_offsets/model.safetensors
ckpt ck_overlap && sed -i 's/"data_offsets":\[81920,163840\]/"data_offsets":[0,81920]     /' ck_overlap/model.safetensors
ckpt ck_dtype && sed -i 's/"lm_head.weight":{"dtype":"F32"/"lm_head.weight":{"dtype":"I32"/' ck_dtype/model.safetensors
ckpt ck_missing && sed -i 's/"model.norm.weight"/"model.nrom.weight"/' ck_missing/model.safetensors
ckpt ck_shape && sed -i 's/"lm_head.weight":{"dtype":"F32","shape":\[320,64\]/"lm_head.weight":{"dtype":"F32","shape":[64,320]/' \
  ck_shape/model.safetensors
ckpt ck_noweights && rm ck_noweights/model.safetensors
ckpt ck_shard && rm ck_shard/model.safetensors &&
  echo '{"metadata": {}, "weight_map": {"lm_head.weight": "model-00002-of-00002.safetensors"}}' \
    > ck_shard/model.safetensors.index.json
ckpt ck_index && mv ck_index/model.safetensors ck_index/model-00001-of-00001.safetensors &&
  echo '{"metadata": {}, "weight_map": {"model.extra.weight": "model-00001-of-00001.safetensors"}}' \
    > ck_index/model.safetensors.index.json

# ---- tokenizers ----
ckpt tok_missing && rm tok_missing/tokenizer.model
printf 'not a model' > tok_text.model
: > tok_empty.model
# a real SentencePiece model with more pieces than the fixture model has embeddings
big_n=""
if command -v spm_train > /dev/null; then
  for i in $(seq 1 3000); do echo "w$i x$((i * 7)) y$((i * 13))"; done > corpus.txt
  spm_train --input=corpus.txt --model_prefix=tok_big --vocab_size=400 --model_type=bpe --minloglevel=2 \
    > /dev/null 2>&1 && big_n=400
fi
if [ -z "$big_n" ] && [ -f "${SRLM_SHARED_DIR:-/nonexistent}/data/llama2/tokenizer.model" ]; then
  cp "$SRLM_SHARED_DIR/data/llama2/tokenizer.model" tok_big.model && big_n=32000
fi

# ---- data ----
cat > train.yaml <<Y
run: {name: t, out_dir: $W/runs, seed: 3, watchdog_s: 0}
model: {path: $M, dtype: float32}
backend: {threads: 1}
train:
  sft: {data: $W/none.jsonl, lr: 0.003, lr_min: 0.0003, batch_size: 2, micro_batch_size: 2, epochs: 1, max_seq_len: 64}
  dpo: {data: $W/none.jsonl, lr: 0.003, lr_min: 0.0003, batch_size: 2, micro_batch_size: 2, epochs: 1, max_seq_len: 64}
Y
printf '{"prompt": "a", "response": "b"}\n{"prompt": "a" "response": "b"}\n' > sft_json.jsonl
printf '{"prompt": "a", "response": "b"}\n{"prompt": "a"}\n' > sft_missing.jsonl
printf '{"prompt": "a", "response": 5}\n' > sft_type.jsonl
printf '{"prompt": "a", "response": "b"}\n' > good.jsonl
: > sft_empty.jsonl
printf '[1, 2]\n' > sft_array.jsonl
printf '{"prompt_ids": [1, 2, 99999], "response_ids": [3]}\n' > sft_ids.jsonl
printf '{"prompt": "a", "response": "b"} x\n' > sft_after.jsonl
printf '{"prompt": "a", "chosen": "b"}\n' > dpo_missing.jsonl
printf '{"prompt": "a", "chosen": "b", "rejected": ["c"]}\n' > dpo_type.jsonl
printf '{"prompt": "a", "chosen": "b", "rejected": "c", "ref_logp_chosen": 1e999, "ref_logp_rejected": 0}\n' > dpo_inf.jsonl
printf '{"prompt": "a", "chosen": "b", "rejected": "c", "ref_logp_chosen": -1.5}\n' > dpo_half.jsonl
printf '{"prompt": "a", "response": "b"\n' > score_json.jsonl
printf '{"prompt": 5}\n' > gen_type.jsonl
# Open Assistant trees: single lines of the small fixture file, each malformed in one way
sed -n 13p "$OASST" > oasst_json.jsonl
sed -n 16p "$OASST" > oasst_role.jsonl
sed -n 18p "$OASST" > oasst_rank.jsonl
sed -n 21p "$OASST" > oasst_duprank.jsonl
: > oasst_empty.jsonl
# seed data of srlm run
printf '{"prompt": "x", "response": "Score: 3"}\n{"prompt": "y", "response": 4}\n' > eft_type.jsonl
printf '{"prompt": "x"}\n{"text": "y"}\n' > ift_noprompt.jsonl
: > empty.jsonl
printf '{"prompt": "x", "replies": [{"text": "a", "rank": 0}]}\n' > heldout_noid.jsonl

# ---- templates ----
printf 'Rate this: {response}\n' > judge_noinstr.txt
printf 'Rate: {instrucion} {response}\n' > judge_typo.txt
printf 'Rate: {instruction} {response} {response}\n' > judge_twice.txt
printf '# the placeholder is missing\nTasks: none\n' > si_noexamples.txt
loop_small_config run.yaml "$W/runs" "$M"

# ---- the table ----
rows="$W/rows.txt"
cat > "$rows" <<T
yaml-syntax       |2| check-config $W/y_syntax.yaml | $W/y_syntax.yaml:4:1: malformed YAML: did not find expected ',' or ']' (while parsing a flow sequence at line 3, column 10)
yaml-unknown-key  |2| check-config $W/y_unknown.yaml | $W/y_unknown.yaml:4:3: unknown key 'loop.iteratons' (did you mean 'loop.iterations'?)
yaml-unknown-sft  |2| sft $W/y_unknown.yaml | $W/y_unknown.yaml:4:3: unknown key 'loop.iteratons' (did you mean 'loop.iterations'?)
yaml-wrong-type   |2| check-config $W/y_type.yaml | $W/y_type.yaml:4:9: key 'run.seed': expected an integer >= 0, found '1.5'
yaml-out-of-range |2| check-config $W/y_range.yaml | $W/y_range.yaml:4:10: key 'generate.top_p': expected a number in (0, 1], found '1.5'
yaml-missing-key  |2| check-config $W/y_missing.yaml | $W/y_missing.yaml: missing required key 'model.path' (Hugging Face checkpoint folder of M0: config.json, *.safetensors)
yaml-cross-key    |2| check-config $W/y_cross.yaml | $W/y_cross.yaml: train.sft.lr_min (1) is above train.sft.lr (0.001)
yaml-not-mapping  |2| check-config $W/y_mapping.yaml | $W/y_mapping.yaml:1:8: key 'model': expected a mapping (a section with keys path, tokenizer, dtype), found '/m'
yaml-duplicate    |2| check-config $W/y_duplicate.yaml | $W/y_duplicate.yaml:3:3: duplicate key 'model.path' (first given at line 2)
yaml-enum         |2| check-config model.path=/m model.dtype=int8 | override 'model.dtype=int8': expected one of float32, bfloat16, float16, found 'int8'
yaml-cross-world  |2| run $W/run.yaml run.name=dp parallel.dp=2 --quiet | parallel.tp = 1 x parallel.dp = 2 = 2 ranks, but the world size is 1 (launch 2 ranks, or set parallel.dp = 0 to derive it)
num-yaml-nan      |2| check-config $W/y_nan.yaml | $W/y_nan.yaml:5:9: key 'train.sft.lr': expected a number > 0, found '.nan'
num-override-inf  |2| check-config model.path=/m train.dpo.beta=inf | override 'train.dpo.beta=inf': expected a number > 0, found 'inf'
num-override-nan  |2| check-config model.path=/m generate.temperature=nan | override 'generate.temperature=nan': expected a number in [0, 5], found 'nan'
num-yaml-negative |2| check-config $W/y_negative.yaml | $W/y_negative.yaml:4:12: key 'generate.samples': expected an integer >= 1, found '-3'
num-yaml-huge     |2| check-config $W/y_huge.yaml | $W/y_huge.yaml:4:15: key 'loop.iterations': expected an integer >= 1, found '99999999999999999999'
num-flag-nan      |2| generate --model $M --prompt hi --top-p nan | srlm generate: --top-p expects a finite number, found 'nan'
num-flag-negative |2| generate --model $M --prompt hi --samples -2 | --samples: expected >= 1, found -2
num-flag-seed     |2| generate --model $M --prompt hi --seed -1 | --seed: expected >= 0, found -1
num-flag-topk     |2| generate --model $M --prompt hi --top-k -3 | --top-k: expected >= 0 (0 = off), found -3
num-flag-threads  |2| score --model $M --input $W/good.jsonl --threads -3 | --threads: expected >= 0 (0 = all cores), found -3
num-flag-steps    |2| sft $W/train.yaml --stop-after -1 | srlm sft: --stop-after expects a number of steps >= 0 (0 = run to the end), found -1
num-flag-int      |2| generate --model $M --prompt hi --max-new-tokens 1e3 | srlm generate: --max-new-tokens expects an integer, found '1e3'
num-config-eps    |2| inspect $W/ck_eps | $W/ck_eps/config.json: "rms_norm_eps": expected a positive number, found -1
num-config-inf    |2| inspect $W/ck_theta | $W/ck_theta/config.json: "rope_theta": expected a positive number, found inf
num-config-neg    |2| inspect $W/ck_vocab | $W/ck_vocab/config.json: "vocab_size": expected an integer >= 1, found -320
num-dpo-ref-inf   |2| dpo $W/train.yaml run.name=dpo_inf train.dpo.data=$W/dpo_inf.jsonl | $W/dpo_inf.jsonl:1: key "ref_logp_chosen": expected a finite number, found inf
ckpt-no-folder    |2| inspect $W/no-such-folder | $W/no-such-folder: not a folder; expected a Hugging Face model folder (config.json + model.safetensors)
ckpt-no-config    |2| inspect $W/ck_noconfig | cannot open $W/ck_noconfig/config.json: No such file or directory
ckpt-config-json  |2| inspect $W/ck_json | $W/ck_json/config.json: not valid JSON (error at line 2, column 1)
ckpt-config-type  |2| inspect $W/ck_type | $W/ck_type/config.json: "hidden_size": expected an integer >= 1, found "64"
ckpt-config-size  |2| inspect $W/ck_size | $W/ck_size/model.safetensors: tensor 'model.embed_tokens.weight': expected shape [320, 128], found [320, 64]
ckpt-fewer-layers |2| score --model $W/ck_fewer --input $W/good.jsonl | $W/ck_fewer/model.safetensors: tensor 'model.layers.1.input_layernorm.weight' is not part of the model $W/ck_fewer/config.json describes (num_hidden_layers 1): expected only Llama tensors of layers 0 .. 0; the config does not match the weights
ckpt-more-layers  |2| score --model $W/ck_more --input $W/good.jsonl | $W/ck_more: tensor 'model.layers.2.input_layernorm.weight' (expected shape [64]) is missing from $W/ck_more/model.safetensors
ckpt-heads        |2| inspect $W/ck_heads | $W/ck_heads/config.json: hidden_size 64 is not divisible by num_attention_heads 7
ckpt-unsupported  |2| inspect $W/ck_rope | $W/ck_rope/config.json: "rope_scaling" is not supported: expected null, found an object
ckpt-truncated    |2| inspect $W/ck_trunc | $W/ck_trunc/model.safetensors: tensor 'model.layers.1.mlp.gate_proj.weight': data_offsets [381696, 425728] lie outside the data area (397856 bytes; is the file truncated?)
ckpt-too-short    |2| inspect $W/ck_short | $W/ck_short/model.safetensors: file is 4 bytes, shorter than the 8-byte header length (not a safetensors file, or truncated)
ckpt-header-len   |2| inspect $W/ck_hlen | $W/ck_hlen/model.safetensors: header length 4294967295 runs past the end of the file (2 bytes after the 8-byte length; not a safetensors file, or truncated)
ckpt-offsets-lie  |2| inspect $W/ck_offsets | $W/ck_offsets/model.safetensors: tensor 'lm_head.weight': shape [320, 64] x F32 needs 81920 bytes but data_offsets [0, 81924] hold 81924 bytes
ckpt-overlap      |2| inspect $W/ck_overlap | $W/ck_overlap/model.safetensors: tensors 'lm_head.weight' (bytes 0..81920) and 'model.embed_tokens.weight' (bytes 0..81920) overlap in the data area
ckpt-dtype        |2| inspect $W/ck_dtype | $W/ck_dtype/model.safetensors: tensor 'lm_head.weight' has unsupported dtype 'I32' (supported: F32, BF16, F16)
ckpt-missing      |2| inspect $W/ck_missing | $W/ck_missing: tensor 'model.norm.weight' (expected shape [64]) is missing from $W/ck_missing/model.safetensors
ckpt-transposed   |2| generate --model $W/ck_shape --prompt hi | $W/ck_shape/model.safetensors: tensor 'lm_head.weight': expected shape [320, 64], found [64, 320]
ckpt-no-weights   |2| inspect $W/ck_noweights | $W/ck_noweights: found neither model.safetensors nor model.safetensors.index.json
ckpt-index-shard  |2| inspect $W/ck_shard | $W/ck_shard/model.safetensors.index.json: tensor 'lm_head.weight' is in shard model-00002-of-00002.safetensors, but $W/ck_shard/model-00002-of-00002.safetensors does not exist
ckpt-index-tensor |2| inspect $W/ck_index | $W/ck_index/model.safetensors.index.json lists tensor 'model.extra.weight' in model-00001-of-00001.safetensors, but $W/ck_index/model-00001-of-00001.safetensors has no such tensor
tok-missing       |2| score --model $W/tok_missing --input $W/good.jsonl | tokenizer file '$W/tok_missing/tokenizer.model': No such file or directory
tok-garbage       |2| tokenize --tokenizer $W/tok_text.model | tokenizer file '$W/tok_text.model' is not a valid SentencePiece model (it does not parse as a SentencePiece ModelProto)
tok-empty         |2| tokenize --tokenizer $W/tok_empty.model | tokenizer file '$W/tok_empty.model' is not a valid SentencePiece model (unk is not defined.)
tok-vocab         |2| score --model $M --input $W/good.jsonl --tokenizer $W/tok_big.model | $W/tok_big.model has $big_n pieces but the model in $M has only 320 embeddings (vocab_size): they do not belong together
tok-vocab-sft     |2| sft $W/train.yaml run.name=tok model.tokenizer=$W/tok_big.model train.sft.data=$W/good.jsonl | $W/tok_big.model has $big_n pieces but the model in $M has only 320 embeddings (vocab_size): they do not belong together
tok-bad-id        |2| detokenize --tokenizer $M/tokenizer.model < $W/ids.txt | token id 99999 at position 1 is outside the vocabulary [0, 320)
sft-bad-json      |2| sft $W/train.yaml run.name=sft_json train.sft.data=$W/sft_json.jsonl | $W/sft_json.jsonl:2:16: not valid JSON
sft-missing-field |2| sft $W/train.yaml run.name=sft_missing train.sft.data=$W/sft_missing.jsonl | $W/sft_missing.jsonl:2: missing key "response" (a string)
sft-wrong-type    |2| sft $W/train.yaml run.name=sft_type train.sft.data=$W/sft_type.jsonl | $W/sft_type.jsonl:1: key "response": expected a string, found a number
sft-empty         |2| sft $W/train.yaml run.name=sft_empty train.sft.data=$W/sft_empty.jsonl | $W/sft_empty.jsonl: no usable examples (read 0, skipped 0 longer than max_seq_len, 0 with an empty response)
sft-not-object    |2| sft $W/train.yaml run.name=sft_array train.sft.data=$W/sft_array.jsonl | $W/sft_array.jsonl:1: expected a JSON object, found an array
sft-id-range      |2| sft $W/train.yaml run.name=sft_ids train.sft.data=$W/sft_ids.jsonl | $W/sft_ids.jsonl:1: key "prompt_ids" element 2: expected a token id in [0, 320), found 99999
sft-text-after    |2| sft $W/train.yaml run.name=sft_after train.sft.data=$W/sft_after.jsonl | $W/sft_after.jsonl:1:34: not valid JSON (text after the value)
dpo-missing-field |2| dpo $W/train.yaml run.name=dpo_missing train.dpo.data=$W/dpo_missing.jsonl | $W/dpo_missing.jsonl:1: missing key "rejected" (a string)
dpo-wrong-type    |2| dpo $W/train.yaml run.name=dpo_type train.dpo.data=$W/dpo_type.jsonl | $W/dpo_type.jsonl:1: key "rejected": expected a string, found an array
dpo-half-refs     |2| dpo $W/train.yaml run.name=dpo_half train.dpo.data=$W/dpo_half.jsonl | $W/dpo_half.jsonl:1: "ref_logp_chosen" is given without "ref_logp_rejected": expected both or neither
score-bad-json    |2| score --model $M --input $W/score_json.jsonl | $W/score_json.jsonl:1:32: not valid JSON
generate-type     |2| generate --model $M --input $W/gen_type.jsonl --output $W/gen.out | $W/gen_type.jsonl:1: key "prompt": expected a string, found a number
oasst-bad-json    |2| data oasst $W/oasst_json.jsonl --out $W/oasst_out --on-bad-tree fail | $W/oasst_json.jsonl:1:89: not valid JSON (refused: --on-bad-tree fail; nothing written)
oasst-bad-role    |2| data oasst $W/oasst_role.jsonl --out $W/oasst_out --on-bad-tree fail | $W/oasst_role.jsonl:1: malformed tree: prompt.role: expected "prompter" (the root of a tree), found "assistant" (refused: --on-bad-tree fail; nothing written)
oasst-bad-rank    |2| data oasst $W/oasst_rank.jsonl --out $W/oasst_out --on-bad-tree fail | $W/oasst_rank.jsonl:1: malformed tree: prompt.replies[1].rank: expected an integer >= 0 or null, found -1 (refused: --on-bad-tree fail; nothing written)
oasst-dup-rank    |2| data oasst $W/oasst_duprank.jsonl --out $W/oasst_out --on-bad-tree fail | $W/oasst_duprank.jsonl:1: malformed tree: prompt.replies[2].rank: 1 again (sibling 1 has it too); ranks must differ among siblings (refused: --on-bad-tree fail; nothing written)
oasst-empty       |2| data oasst $W/oasst_empty.jsonl --out $W/oasst_out | $W/oasst_empty.jsonl: no trees: expected one Open Assistant message tree (a JSON object) per line, found an empty file; nothing written
run-eft-type      |2| run $W/run.yaml run.name=eft loop.skip_sft=false data.eft=$W/eft_type.jsonl --quiet | data.eft: $W/eft_type.jsonl:2: key "response": expected a string, found a number
run-ift-empty     |2| run $W/run.yaml run.name=ift data.ift=$W/empty.jsonl --quiet | data.ift: $W/empty.jsonl: no records: expected JSONL of {prompt, ...}, found an empty file
run-ift-field     |2| run $W/run.yaml run.name=ift2 data.ift=$W/ift_noprompt.jsonl --quiet | data.ift: $W/ift_noprompt.jsonl:2: missing key "prompt" (a string)
run-ift-sft       |2| run $W/run.yaml run.name=ift3 loop.skip_sft=false data.ift=$W/sft_missing.jsonl --quiet | data.ift: $W/sft_missing.jsonl:2: missing key "response" (a string)
run-heldout-empty |2| run $W/run.yaml run.name=ho eval.heldout=$W/empty.jsonl --quiet | eval.heldout: $W/empty.jsonl: no records: expected JSONL of {prompt_id, prompt, replies: [{text, rank}, ...]}, found an empty file
run-heldout-field |2| run $W/run.yaml run.name=ho2 eval.heldout=$W/heldout_noid.jsonl --quiet | eval.heldout: $W/heldout_noid.jsonl:1: missing key "prompt_id" (a string)
judge-no-instr    |2| run $W/run.yaml run.name=j1 judge.template=$W/judge_noinstr.txt --quiet | $W/judge_noinstr.txt: judge template has no {instruction} placeholder (expected exactly one; lines starting with '#' are comments)
judge-typo        |2| run $W/run.yaml run.name=j2 judge.template=$W/judge_typo.txt --quiet | $W/judge_typo.txt: judge template has no {instruction} placeholder (expected exactly one; lines starting with '#' are comments)
judge-twice       |2| run $W/run.yaml run.name=j3 judge.template=$W/judge_twice.txt --quiet | $W/judge_twice.txt:1: judge template has {response} 2 times (first on line 1); expected exactly once
judge-no-file     |2| run $W/run.yaml run.name=j4 judge.template=$W/no-such-judge.txt --quiet | $W/no-such-judge.txt: cannot open judge template: No such file or directory
si-no-examples    |2| run $W/run.yaml run.name=s1 self_instruct.template=$W/si_noexamples.txt --quiet | $W/si_noexamples.txt: self-instruct template has no {examples} placeholder (expected exactly one; lines starting with '#' are comments)
T
echo '5 99999' > ids.txt

# ---- run every row (four at a time), then check each ----
ids=() codes=() argss=() msgs=()
while IFS='|' read -r id code args msg; do
  [ -n "$id" ] || continue
  ids+=("$(echo $id)") codes+=("$(echo $code)") argss+=("$args") msgs+=("${msg# }")
done < "$rows"

run_row() { # index: output in rows/N.{out,err,rc}
  local i=$1 words
  if [ "${ids[$i]#tok-vocab}" != "${ids[$i]}" ] && [ -z "$big_n" ]; then echo skip > "rows/$i.rc"; return; fi
  eval "words=(${argss[$i]%%<*})"
  local input=/dev/null
  case "${argss[$i]}" in *"<"*) input=$(echo ${argss[$i]##*<}) ;; esac
  timeout 120 "$SRLM_BIN" "${words[@]}" < "$input" > "rows/$i.out" 2> "rows/$i.err"
  echo $? > "rows/$i.rc"
}
for i in "${!ids[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge 4 ]; do wait -n; done
  run_row "$i" &
done
wait

fails=0 skipped=0
printf '%-18s %-5s %-5s %s\n' "input" "exit" "want" "result"
for i in "${!ids[@]}"; do
  rc=$(cat "rows/$i.rc")
  if [ "$rc" = skip ]; then
    printf '%-18s %-5s %-5s %s\n' "${ids[$i]}" - "${codes[$i]}" "skipped (neither spm_train nor the Llama-2 tokenizer to make a bigger vocabulary)"
    skipped=$((skipped + 1))
    continue
  fi
  got=$(sed -n 's/^srlm [a-z -]*: error: //p' "rows/$i.err" | head -1)
  why=""
  if [ "$rc" -ge 128 ] || grep -qE 'Sanitizer|Segmentation|core dumped|Assertion|Aborted' "rows/$i.err"; then
    why="CRASH"
  elif [ "$rc" != "${codes[$i]}" ]; then
    why="exit $rc, expected ${codes[$i]}"
  elif [ "$got" != "${msgs[$i]}" ]; then
    why="message differs"
  fi
  if [ -n "$why" ]; then
    printf '%-18s %-5s %-5s FAIL: %s\n' "${ids[$i]}" "$rc" "${codes[$i]}" "$why"
    echo "    srlm ${argss[$i]}"
    echo "    want: ${msgs[$i]}"
    echo "    got:  $got"
    [ -n "$got" ] || sed 's/^/    stderr: /' "rows/$i.err" | tail -5
    fails=$((fails + 1))
  else
    printf '%-18s %-5s %-5s ok: %.90s\n' "${ids[$i]}" "$rc" "${codes[$i]}" "$got"
  fi
done
echo "${#ids[@]} bad inputs: $((${#ids[@]} - fails - skipped)) passed, $fails failed, $skipped skipped"
[ "${#ids[@]}" -ge 30 ] || { echo "FAIL: the table must hold at least 30 bad inputs"; fails=$((fails + 1)); }
[ $fails = 0 ] || exit 1
