#!/usr/bin/env python3
"""Write the seed corpora of tests/fuzz/corpus/<target>/ (committed; plain Python 3,
no packages): valid examples from tests/fixtures, configs/ and the tables of the
unit tests, plus edge cases. Run from anywhere: python3 tests/fuzz/make_corpus.py
It replaces each target's folder whole, so a rerun gives the same files."""
import json
import os
import re
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(HERE, "corpus")


def read(rel):
    with open(os.path.join(ROOT, rel), "rb") as f:
        return f.read()


def c_literals(rel, start, end):
    """Each table row's leading C string literal(s), concatenated and unescaped,
    between the first lines containing `start` and `end` in file `rel`."""
    text = read(rel).decode("utf-8")
    text = text[text.index(start):]
    text = text[: text.index(end)]
    rows = []
    for m in re.finditer(r'\{\s*((?:"(?:[^"\\\n]|\\.)*"\s*)+)', text):
        parts = re.findall(r'"((?:[^"\\\n]|\\.)*)"', m.group(1))
        rows.append(b"".join(c_unescape(p) for p in parts))
    return rows


def c_unescape(s):
    out, i = bytearray(), 0
    b = s.encode("utf-8")
    simple = {ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("0"): 0, ord("\\"): 92, ord('"'): 34, ord("'"): 39}
    while i < len(b):
        c = b[i]
        if c != 92:
            out.append(c)
            i += 1
            continue
        e = b[i + 1]
        if e == ord("x"):
            j = i + 2
            while j < len(b) and chr(b[j]) in "0123456789abcdefABCDEF":
                j += 1
            out.append(int(b[i + 2 : j], 16) & 0xFF)
            i = j
        else:
            out.append(simple[e])
            i += 2
    return bytes(out)


class Corpus:
    def __init__(self, target):
        self.dir = os.path.join(OUT, target)
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        self.n = 0
        self.seen = set()

    def add(self, name, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        if data in self.seen:
            return
        self.seen.add(data)
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name)[:40].strip("-") or "x"
        with open(os.path.join(self.dir, "%03d-%s" % (self.n, slug)), "wb") as f:
            f.write(data)
        self.n += 1


# ---------------------------------------------------------------- safetensors

def st_file(header, data=b"", declared=None, pad=True):
    h = header if isinstance(header, bytes) else json.dumps(header, separators=(",", ":")).encode()
    if pad:
        h += b" " * (-len(h) % 8)
    n = len(h) if declared is None else declared
    return struct.pack("<Q", n) + h + data


def st_valid():
    f32 = struct.pack("<6f", 0.0, -1 / 3, 65504.0, 1.5, -2.0, 3.25)
    bf16 = struct.pack("<5H", 0x3F80, 0xBF80, 0x0000, 0x7F80, 0x4049)
    f16 = struct.pack("<3H", 0x3C00, 0x7BFF, 0x0001)
    hdr = {
        "__metadata__": {"format": "pt"},
        "w": {"dtype": "F32", "shape": [3, 2], "data_offsets": [0, 24]},
        "v": {"dtype": "BF16", "shape": [5], "data_offsets": [24, 34]},
        "h \"q\"": {"dtype": "F16", "shape": [1, 3, 1, 1], "data_offsets": [34, 40]},
        "empty": {"dtype": "F32", "shape": [0, 4], "data_offsets": [40, 40]},
    }
    return st_file(hdr, f32 + bf16 + f16)


def safetensors():
    c = Corpus("safetensors")
    c.add("valid-4-tensors", st_valid())
    c.add("valid-unpadded-odd", st_file({"a": {"dtype": "F16", "shape": [3], "data_offsets": [0, 6]}},
                                        b"\x00\x3c\x00\xbc\xff\x7b", pad=False))
    c.add("valid-empty-header", st_file({}))
    c.add("valid-metadata-only", st_file({"__metadata__": {"format": "pt", "k": "v"}}))
    # the real header of the fixture with the data cut off (offsets now lie)
    real = read("tests/fixtures/llama/tiny-gqa/model.safetensors")
    hlen = struct.unpack("<Q", real[:8])[0]
    c.add("fixture-header-truncated", real[: 8 + hlen + 16])
    # every bad header of tests/unit/test_safetensors.c
    for i, h in enumerate(c_literals("tests/unit/test_safetensors.c", "static const bad_case cases[]", "for (int i")):
        c.add("bad-%02d" % i, st_file(h, bytes(range(24)), pad=False))
    c.add("length-past-end", st_file(b"{}", declared=1000, pad=False))
    c.add("length-huge", st_file(b"{}", declared=0x7FFFFFFFFFFFFFFF, pad=False))
    c.add("short", b"\x02\x00\x00")
    c.add("nul-in-header", st_file(b'{"a\x00b": 1}', pad=False))


def safetensors_index():
    c = Corpus("safetensors_index")
    s1, s2 = "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"
    full = {"metadata": {"total_size": 192}, "weight_map": {"a": s1, "b": s1, "c": s2, "d": s2}}
    c.add("valid-two-shards", json.dumps(full, indent=2))
    c.add("valid-one-shard", json.dumps({"weight_map": {"c": s2}}))
    c.add("valid-partial", json.dumps({"weight_map": {"a": s1, "d": s2}}))
    c.add("dup-tensor-two-shards", json.dumps({"weight_map": {"a": s1, "c": s2, "x": "model-dup.safetensors"}}))
    c.add("dup-key", '{"weight_map": {"a": "%s", "a": "model-dup.safetensors"}}' % s1)
    c.add("tensor-not-in-shard", json.dumps({"weight_map": {"c": s1}}))
    c.add("missing-shard", json.dumps({"weight_map": {"a": "model-00003-of-00003.safetensors"}}))
    c.add("traversal", json.dumps({"weight_map": {"a": "../" + s1}}))
    c.add("dotdot", json.dumps({"weight_map": {"a": ".."}}))
    c.add("empty-name", json.dumps({"weight_map": {"a": ""}}))
    c.add("config-as-shard", json.dumps({"weight_map": {"a": "config.json"}}))
    c.add("self-as-shard", json.dumps({"weight_map": {"a": "model.safetensors.index.json"}}))
    c.add("not-string", json.dumps({"weight_map": {"a": 3}}))
    c.add("empty-map", json.dumps({"weight_map": {}}))
    c.add("map-array", json.dumps({"weight_map": [s1]}))
    c.add("no-map", json.dumps({"metadata": {}}))
    c.add("top-array", "[1, 2]")
    c.add("syntax", '{"weight_map": {"a": "%s",\n}' % s1)


def hf_config():
    c = Corpus("hf_config")
    for name in ("tiny-gqa", "tiny-rope", "tiny-bf16"):
        c.add("fixture-" + name, read("tests/fixtures/llama/%s/config.json" % name))
    base = {"vocab_size": 32, "hidden_size": 16, "intermediate_size": 40, "num_hidden_layers": 2,
            "num_attention_heads": 4}
    c.add("minimal", json.dumps(base))
    variants = [
        ("gqa-headdim", {"num_key_value_heads": 2, "head_dim": 8, "tie_word_embeddings": True}),
        ("token-lists", {"bos_token_id": [1, 2], "eos_token_id": [], "pad_token_id": None}),
        ("dtype-new-key", {"dtype": "bfloat16", "torch_dtype": None}),
        ("eps-tiny", {"rms_norm_eps": 4.9e-324, "rope_theta": 1e308}),
        ("eps-precise", {"rms_norm_eps": 0.1 + 0.2, "rope_theta": 500000.0}),
        ("rope-scaling", {"rope_scaling": {"type": "linear", "factor": 2.0}}),
        ("bias", {"attention_bias": True}),
        ("act", {"hidden_act": "gelu"}),
        ("tp", {"pretraining_tp": 2}),
        ("mistral", {"model_type": "mistral"}),
        ("kv-not-dividing", {"num_key_value_heads": 3}),
        ("float-size", {"hidden_size": 16.5}),
        ("huge-size", {"hidden_size": 1e20}),
        ("neg-token", {"eos_token_id": -5}),
        ("tie-string", {"tie_word_embeddings": "yes"}),
        ("dtype-fp8", {"torch_dtype": "float8"}),
    ]
    for name, extra in variants:
        d = dict(base)
        d.update(extra)
        c.add(name, json.dumps(d))
    c.add("missing-vocab", json.dumps({k: v for k, v in base.items() if k != "vocab_size"}))
    c.add("not-object", "[]")
    c.add("syntax", '{"vocab_size": 32,\n  "hidden_size": }')
    c.add("empty", "")
    # cJSON keeps a repeated key (lookups see the first) and cuts strings at \u0000: refused
    c.add("dup-key", json.dumps(base)[:-1] + ',\n "num_hidden_layers": 4}')
    c.add("dup-nested", json.dumps(dict(base, rope_scaling=None))[:-1] + ', "x": {"a": 1, "a": 2}}')
    c.add("nul-escape", json.dumps(dict(base, model_type="llama\u0000x")))
    # Mistral: its window read and written back; a zero or text window refused
    c.add("fixture-tiny-mistral", read("tests/fixtures/llama/tiny-mistral/config.json"))
    c.add("mistral-no-window", json.dumps(dict(base, model_type="mistral", sliding_window=None)))
    c.add("mistral-window-zero", json.dumps(dict(base, model_type="mistral", sliding_window=0)))
    c.add("llama-window", json.dumps(dict(base, sliding_window=4096)))


def model_config():
    c = Corpus("model_config")
    real = read("tests/fixtures/llama/tiny-gqa/config.json")
    c.add("fixture-tiny-gqa", real)
    base = json.loads(real)
    lies = [
        ("vocab-bigger", {"vocab_size": 321}),
        ("vocab-huge", {"vocab_size": 2147483647}),
        ("hidden-huge", {"hidden_size": 1048576, "head_dim": 8}),
        ("layers-many", {"num_hidden_layers": 100000}),
        ("layers-one", {"num_hidden_layers": 1}),
        ("layers-three", {"num_hidden_layers": 3}),
        ("heads-4", {"num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 16}),
        ("heads-huge", {"num_attention_heads": 1073741824, "num_key_value_heads": 1, "head_dim": 1024}),
        ("headdim-odd", {"head_dim": 7}),
        ("ffn-huge", {"intermediate_size": 2147483647}),
        ("tied", {"tie_word_embeddings": True}),
        ("bf16", {"torch_dtype": "bfloat16"}),
    ]
    for name, extra in lies:
        d = dict(base)
        d.update(extra)
        c.add(name, json.dumps(d, indent=1))


def yaml_config():
    c = Corpus("yaml_config")
    c.add("tiny-test", read("configs/tiny-test.yaml"))
    c.add("llama2-7b", read("configs/llama2-7b.yaml"))
    c.add("minimal", "model:\n  path: /m\n")
    c.add("flow", "model: {path: /m, dtype: float16}\nbackend: {name: cuda, threads: 8}\n")
    c.add("values", "# comment\nrun:\n  name: from-file\n  seed: 42\nmodel:\n  path: \"/data/llama 7b\"\n"
          "  dtype: float16\njudge:\ntrain:\n  sft:\n    lr: 1e-6\n    schedule: constant\n"
          "    recompute: true\n  dpo:\n    beta: 0.25\n    loss: ipo\nloop:\n  iterations: 3\n"
          "  length_control: True\n")
    c.add("overrides", b"model:\n  path: /m\n\x00train.dpo.beta=0.2\x00run.name='a: b # c'\x00generate.top_k=40"
          b"\x00train.dpo.lr_min=1e-5\x00train.dpo.schedule=constant")
    c.add("override-only", b"\x00model.path=/m\x00eval.heldout=\"tab\\there\"")
    c.add("strings", "model:\n  path: \"/m\\x01\\u2028x\\N\"\nrun:\n  name: 'it''s'\ndata:\n  ift: donn\xc3\xa9es.jsonl\n"
          "eval:\n  heldout: |\n    two\n    lines\n")
    c.add("numbers", "model: {path: /m}\nrun: {watchdog_s: 1e-300, seed: 2147483647}\n"
          "train: {dpo: {beta: 0.30000000000000004, dropout: 0.0}, sft: {epochs: 2.5}}\n")
    c.add("anchors", "model: &m {path: /m}\nrun: *m\n")
    c.add("anchor-scalar", "model:\n  path: &p /m\n  tokenizer: *p\n")
    for i, (text, _) in enumerate([
        ("model:\n  path: /m\ntrain:\n  sft:\n    lr: 1e-5\n    lrr: 1\n", 0),
        ("model:\n  path: /m\ntrian:\n  sft: {}\n", 0),
        ("model:\n  path: /m\ngenerate:\n  samples: 2.5\n", 0),
        ("model:\n  path: /m\nloop:\n  build_eft: yes\n", 0),
        ("model:\n  path: /m\ntrain:\n  sft:\n    lr: 1e-5\n    lr: 2e-5\n", 0),
        ("model:\n  path:\n    dir: /m\n", 0),
        ("- model\n- run\n", 0),
        ("model:\n\tpath: /m\n", 0),
        ("model:\n  path: /m\n---\nrun: {}\n", 0),
        ("model:\n  path: \"\"\n", 0),
        ("model.path: /m\ntrain.sft.lr: 1\n", 0),
        ("model:\n  path: /m\n? [a, b]\n: c\n", 0),
        ("model:\n  path: /m\n  dtype: fp8\n", 0),
        ("model:\n  path: /m\ntrain:\n  sft:\n    micro_batch_size: 32\n", 0),
        ("%YAML 1.1\n---\nmodel: {path: !!str /m}\n...\n", 0),
    ]):
        c.add("case-%02d" % i, text)
    c.add("bad-utf8", b"model:\n  path: /m\xff\n")
    c.add("empty", "")


# ---------------------------------------------------------------- JSONL records

def jsonl_sft():
    c = Corpus("jsonl_sft")
    c.add("text-and-ids",
          '{"prompt": "Count the words.", "response": "Four words here."}\n\n'
          '{"prompt_ids": [1, 5, 6, 7], "response_ids": [8, 9, 2], "extra": 1}\n'
          '{"prompt": "Say nothing.", "response": "  "}\n'
          '{"prompt_ids": [1, 5], "response_ids": []}\n'
          '{"prompt_ids": [1, 5], "response_ids": [2]}\n')
    c.add("long",
          '{"prompt_ids": [1, 10, 11, 12, 13, 14], "response_ids": [20, 21, 2]}\n'
          '{"prompt_ids": [1, 10], "response_ids": [20, 21, 22, 23, 24, 25, 26, 2]}\n'
          '{"prompt_ids": [1, 10], "response_ids": [20, 2]}\n')
    c.add("unicode", '{"prompt": "Caf\\u00e9 na\u00efve \\ud83d\\ude00\\n\\ttab", "response": "\u00abok\u00bb \\u0000?"}\r\n')
    for i, text in enumerate([
        '{"prompt": "a", "response": "b"}\n{"prompt": "a",\n',
        '{"prompt": "a"}\n',
        '{"prompt": "a", "response": 5}\n',
        '{"prompt": "a", "response": "b"}\n{"prompt_ids": [1, 320], "response_ids": [3, 2]}\n',
        '{"prompt_ids": [1, 3], "response_ids": [3, -1]}\n',
        '{"prompt_ids": [1, 3], "response_ids": [3, 2.5, 1e300]}\n',
        '{"prompt_ids": [1, 3]}\n',
        '[1, 2]\n',
        '{"prompt": "a", "response": "b"} {"x": 1}\n',
        '\n\n',
        '{"prompt_ids": [], "response_ids": [5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 2]}\n',
        # a key twice, \u0000 in a string (both refused), a literal backslash-u0000 (text)
        '{"prompt": "a", "response": "b", "prompt": "c"}\n',
        '{"prompt": "a\\u0000b", "response": "c"}\n',
        '{"prompt": "a\\\\u0000b", "response": "c"}\n',
    ]):
        c.add("case-%02d" % i, text)


def jsonl_dpo():
    c = Corpus("jsonl_dpo")
    c.add("pairs-file",
          '{"prompt_id": "p7", "prompt": "ignored", "chosen": "x", "rejected": "y", '
          '"prompt_ids": [1, 5, 6], "chosen_ids": [7, 8, 2], "rejected_ids": [9, 2], '
          '"score_chosen": 4.5, "score_rejected": 1, "ref_logp_chosen": -12.25, '
          '"ref_logp_rejected": -3.5, "tokenizer_sha256": "abc"}\n'
          '{"prompt": "Write a poem.", "chosen": "The sea.", "rejected": "The sky."}\n'
          '{"prompt": "Same.", "chosen": "Yes.", "rejected": " Yes. "}\n'
          '{"prompt": "Empty.", "chosen": "Yes.", "rejected": ""}\n'
          '{"prompt_ids": [1, 5], "chosen_ids": [], "rejected_ids": [3, 2]}\n'
          '{"prompt_ids": [1, 5], "chosen_ids": [3, 2], "rejected_ids": [3, 2], "ref_logp_chosen": null, '
          '"ref_logp_rejected": null}\n')
    c.add("long",
          '{"prompt_ids": [1, 10, 11, 12, 13], "chosen_ids": [20, 2], "rejected_ids": [30, 31, 32, 2]}\n'
          '{"prompt_ids": [1, 10], "chosen_ids": [20, 2], "rejected_ids": [30, 31, 32, 33, 34, 35, 36, 2]}\n')
    for i, text in enumerate([
        '{"prompt_ids": [1], "chosen_ids": [3, 2], "rejected_ids": [4, 2], "ref_logp_chosen": -1}\n',
        '{"prompt_ids": [1], "chosen_ids": [3, 2], "rejected_ids": [4, 2], "ref_logp_chosen": -1, '
        '"ref_logp_rejected": -1e999}\n',
        '{"prompt_ids": [1], "chosen_ids": [3, 2], "rejected_ids": [4, 2], "ref_logp_chosen": "-1", '
        '"ref_logp_rejected": -1}\n',
        '{"prompt_ids": [1], "chosen_ids": [3, 2]}\n',
        '{"prompt": "a", "chosen": "b"}\n',
        '{"prompt_ids": [1], "chosen_ids": [3, 2], "rejected_ids": [3, 2]}\n',
        '{"prompt": "\\u00e9\\n", "chosen": "\\ud83d\\ude00", "rejected": "\\u0000"}\n',
    ]):
        c.add("case-%02d" % i, text)


def oasst():
    c = Corpus("oasst")
    text = read("tests/data/oasst-small.jsonl")
    c.add("oasst-small", text)
    for i, line in enumerate(text.split(b"\n")):
        if line.strip() and len(line) < 1500:
            c.add("line-%02d" % i, line + b"\n")
    deep = {"message_id": "deep", "text": "q", "role": "prompter", "lang": "en"}
    node = deep
    for d in range(2, 101):
        child = {"text": "t%d" % d, "role": "assistant" if d % 2 == 0 else "prompter", "lang": "en", "rank": 0}
        node["replies"] = [child]
        node = child
    c.add("depth-100", json.dumps({"prompt": deep}) + "\n")


# ---------------------------------------------------------------- judge, self-instruct

def judge_score():
    c = Corpus("judge_score")
    for i, row in enumerate(c_literals("tests/unit/test_judge.c", "static const score_row ROWS[]", "static void test_score_table")):
        c.add("row-%02d" % i, row)
    c.add("nul-same-line", b"Score: 2\x00Score: 3")
    c.add("nul-new-line", b"Score: 2\x00\nScore: 3")
    c.add("long-restated", "".join("The rubric asks for a Score: 0-5; score %d.\n" % (i % 7) for i in range(40))
          + "\n**Score:** 2\n")


def judge_template():
    c = Corpus("judge_template")
    c.add("shipped", read("configs/prompts/judge.txt"))
    c.add("verbatim", "# a comment with {instruction} is not a placeholder\r\n\r\nJudge {this}: Q={instruction}\r\n"
          "#another comment\r\nA={response} {{end}}\r\n\n\n")
    for i, text in enumerate([
        "Judge this: {response}\n",
        "Q: {instruction}\nA: {Response}\n",
        "# {instruction}\nA: {response}\n",
        "Q: {instruction}\nA: {response}\nAgain: {instruction}\n",
        "# c\nQ: {instruction}\n{response}{response}\n",
        "{response}{instruction}",
        "  \t{instruction}\r\r\n{response}\x0b",
        "Q: {instruction}\x00\nA: {response}\n",
        "",
    ]):
        c.add("case-%02d" % i, text)


def si_extract():
    c = Corpus("si_extract")
    for i, row in enumerate(c_literals("tests/unit/test_self_instruct.c", "static void test_extract(void)", "int n = (int)")):
        c.add("row-%02d" % i, row)
    c.add("nul", b"Name rivers\x00hidden")
    c.add("nul-first", b"\x00Name rivers")
    c.add("map", "1. Draw a map of Europe.\n")
    c.add("sea", "Write a poem about the sea.")


def si_template():
    c = Corpus("si_template")
    c.add("shipped", read("configs/prompts/self_instruct.txt"))
    c.add("exact", "# comment with {examples} does not count\r\n\r\nTasks {so far}:\r\n{examples}\r\n#another\r\n"
          "Now one more {{x}}.\r\n\n\n")
    for i, text in enumerate([
        "Write a task.\n",
        "# {examples}\nWrite a task.\n",
        "# c\n{examples}\n\nmore {examples} here\n",
        "{examples}",
        "\t{examples}\x0c",
        "{examples}\x00",
        "",
    ]):
        c.add("case-%02d" % i, text)


def si_blocklist():
    c = Corpus("si_blocklist")
    c.add("shipped", read("configs/prompts/blocklist.txt"))
    c.add("format", "# a comment: map\r\n\r\n   # indented comment\n  Hot   DOG \r\nC++\n\t\n#x")
    c.add("unicode", "caf\u00e9\nna\u00efve  word\n\u00c9T\u00c9\n")
    c.add("empty", "# nothing\n\n")
    c.add("nul", b"map\x00\n")


# ---------------------------------------------------------------- tokenizer

def tokenizer_decode():
    c = Corpus("tokenizer_decode")
    ids = lambda *v: struct.pack("<%di" % len(v), *v)
    c.add("bos-text-eos", ids(1, 5, 6, 7, 8, 9, 2))
    c.add("all-ids", ids(*range(320)))
    c.add("byte-pieces", ids(*range(3, 3 + 256, 7)))
    c.add("out-of-range", ids(1, 5, 320))
    c.add("negative", ids(-1))
    c.add("int-min", ids(-2147483648, 2147483647))
    c.add("odd-length", ids(1, 2) + b"\x05")
    c.add("text", "Hello world. Caf\u00e9 \u2014 na\u00efve \U0001F600\n\ttab")
    c.add("bad-utf8", b"\xff\xfe\xc3(\xe2\x82")
    c.add("corpus-line", read("tests/data/tokenizer-corpus.txt")[:400])


# ---------------------------------------------------------------- run-directory parts

def parts():
    """fuzz_parts: sections split at "%%%": part 0, its sidecar, part 1, ...; a sidecar
    "auto" is written by srlm_artifact_write, "count N" likewise with count N, "none"
    means no sidecar, anything else is the sidecar's bytes."""
    import hashlib
    c = Corpus("parts")
    cand = ('{"prompt_id":0,"prompt":"Name a word.","prompt_ids":[1,5,6],"sample":0,"response":"kalo",'
            '"response_ids":[9,10],"finish_reason":"eos","seed":17}\n'
            '{"prompt_id":0,"prompt":"Name a word.","prompt_ids":[1,5,6],"sample":1,"response":"",'
            '"response_ids":[],"finish_reason":"length","seed":18}\n')
    judg = ('{"prompt_id":0,"sample":0,"judge_sample":0,"text":"Fine. Score: 4","score":4,"valid":true}\n'
            '{"prompt_id":0,"sample":1,"judge_sample":0,"text":"no score","score":null,"valid":false}\n')
    pair = ('{"prompt_id":3,"prompt":"p","chosen":"a","rejected":"b","prompt_ids":[1,4],"chosen_ids":[5,2],'
            '"rejected_ids":[6,2],"score_chosen":4.5,"score_rejected":1,"ref_logp_chosen":-3.25,'
            '"ref_logp_rejected":-7.5,"tokenizer_sha256":"%s"}\n' % ("ab" * 32))

    def side(text, count=None):
        n = count if count is not None else sum(1 for l in text.split("\n") if l.strip(" \t\r"))
        return '{"count": %d, "sha256": "%s"}\n' % (n, hashlib.sha256(text.encode()).hexdigest())

    c.add("auto-three", "%%%".join([cand, "auto", judg, "auto", pair, "auto"]))
    c.add("real-sidecars", "%%%".join([cand, side(cand), judg, side(judg)]))
    c.add("empty-part", "%%%".join(["", "auto", "\n \r\n", "auto"]))
    c.add("corrupted", "%%%".join([cand + "x", side(cand)]))
    c.add("truncated", "%%%".join([cand[:50], side(cand)]))
    c.add("no-sidecar", "%%%".join([cand, "auto", judg, "none"]))
    c.add("odd-no-sidecar", "%%%".join([cand, "auto", judg]))
    c.add("count-mismatch", "%%%".join([cand, "count 7", judg, "count -1"]))
    c.add("sidecar-formats", "%%%".join([cand, '{"sha256": "%s", "count": 2}' % hashlib.sha256(cand.encode()).hexdigest(),
                                         judg, side(judg)[:-3], pair, side(pair).upper()]))
    c.add("bad-records", "%%%".join(['{"a": 1}\n{"a": 1, "a": 2}\n', "auto",
                                     '{"p": "x\\u0000y"}\n', "auto",
                                     '{"a": 1} {"b": 2}\n[1]\n', "auto",
                                     '{"a": \n', "auto"]))
    c.add("crlf-blank", "%%%".join(['\r\n{"a": 1}\r\n\r\n  \t\n{"b": [1, 2]}', "auto"]))
    c.add("nul-byte", b"%%%".join([b'{"a": "x"}\n{"b": "\x00"}\n', b"auto"]))


if __name__ == "__main__":
    for fn in (safetensors, safetensors_index, hf_config, model_config, yaml_config, jsonl_sft, jsonl_dpo, oasst,
               judge_score, judge_template, si_extract, si_template, si_blocklist, tokenizer_decode, parts):
        fn()
    total = 0
    for d in sorted(os.listdir(OUT)):
        files = os.listdir(os.path.join(OUT, d))
        size = sum(os.path.getsize(os.path.join(OUT, d, f)) for f in files)
        total += size
        print("%-20s %3d files %7d bytes" % (d, len(files), size))
    print("%-20s           %7d bytes" % ("total", total))
