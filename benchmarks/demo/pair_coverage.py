#!/usr/bin/env python3
"""Where does an iteration of `srlm demo` act on the held-out evaluation?

For a finished run folder, compares the greedy evaluation answers of M_k and
M_{k+1} (eval/M*/answers) per letter pair, against the instructions the
iteration asked itself (iter-k/candidates) and the DPO pairs it built
(iter-k/train-data.jsonl). Prints, per letter pair that either model answers
wrongly: evaluation instructions, wrong before / after, how often the iteration
asked it, its pairs, and how many of them truly prefer a right answer; then one
summary line: evaluation instructions fixed and broken, distinct instructions
asked, and how many of the letter pairs M_k fails the iteration asked at all.

The truth comes from the run's own word list (the first lines of
data/corpus.txt, one word each, as the demo writes them). Standard library only.

    python3 benchmarks/demo/pair_coverage.py runs/demo [ITER]      (ITER default 1)
"""
import collections
import glob
import json
import os
import re
import sys

PAIR = re.compile(r"starts with '(.)' and ends with '(.)'")


def letter_pair(prompt):
    m = PAIR.search(prompt)
    return (m.group(1), m.group(2)) if m else None


def word_list(run):
    words = []
    with open(f"{run}/data/corpus.txt") as f:
        for line in f:
            w = line.strip()
            if not (w.isalpha() and w.islower()):
                break  # the words come first, then the task's phrases
            words.append(w)
    return set(words)


def answers(run, model):
    out = {}
    for path in sorted(glob.glob(f"{run}/eval/{model}/answers/part-*.jsonl")):
        with open(path) as f:
            for line in f:
                o = json.loads(line)
                out[o["prompt_id"]] = (letter_pair(o["prompt"]), o["response"].strip())
    if not out:
        sys.exit(f"{run}/eval/{model}/answers: no answers (is the run finished?)")
    return out


def main(run, it):
    words = word_list(run)

    def right(pair, reply):
        return bool(reply) and reply in words and reply[0] == pair[0] and reply[-1] == pair[1]

    before, after = answers(run, f"M{it}"), answers(run, f"M{it + 1}")
    if before.keys() != after.keys():
        sys.exit(f"{run}/eval: M{it} and M{it + 1} answered different prompts ({len(before)} vs {len(after)})")
    total, wrong_b, wrong_a = collections.Counter(), collections.Counter(), collections.Counter()
    fixed = broken = 0
    for pid, (pair, reply) in before.items():
        ok_b, ok_a = right(pair, reply), right(pair, after[pid][1])
        total[pair] += 1
        wrong_b[pair] += not ok_b
        wrong_a[pair] += not ok_a
        fixed += ok_a and not ok_b
        broken += ok_b and not ok_a
    asked = collections.Counter()
    for path in glob.glob(f"{run}/iter-{it}/candidates/part-*.jsonl"):
        with open(path) as f:
            for line in f:
                o = json.loads(line)
                if o.get("sample") == 0 and letter_pair(o["prompt"]):
                    asked[letter_pair(o["prompt"])] += 1
    pairs, net_right = collections.Counter(), collections.Counter()
    train_data = f"{run}/iter-{it}/train-data.jsonl"
    if not os.path.exists(train_data + ".done"):
        sys.exit(f"{train_data}: not complete (no .done sidecar): is iteration {it} finished?")
    with open(train_data) as f:
        for line in f:
            o = json.loads(line)
            p = letter_pair(o["prompt"])
            pairs[p] += 1
            net_right[p] += right(p, o["chosen"].strip()) - right(p, o["rejected"].strip())
    failed = [p for p in total if wrong_b[p]]
    print(f"letter pair  eval  wrong M{it}/M{it + 1}  asked  pairs  right-over-wrong")
    for p in sorted(set(failed) | {p for p in total if wrong_a[p]}, key=lambda p: (-total[p], p)):
        print(f"  {p[0]}..{p[1]}      {total[p]:4d}  {wrong_b[p]:5d}/{wrong_a[p]:<5d}  {asked[p]:5d}  "
              f"{pairs[p]:5d}  {net_right[p]:5d}")
    covered = sum(1 for p in failed if asked[p])
    print(f"summary: {fixed} evaluation instructions fixed, {broken} broken; {len(asked)} distinct instructions "
          f"asked; {covered} of the {len(failed)} letter pairs M{it} fails were asked")


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) == 3 else 1)
