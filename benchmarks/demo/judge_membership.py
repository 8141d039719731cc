#!/usr/bin/env python3
"""Does the demo's judge check that an answer is in the word list?

For each iteration folder given (RUN/iter-N of `srlm demo`), reads the judge's
texts (judgements/part-*.jsonl) and splits them by whether the answer appears in
the judge's own recall line ("recall: List the words ... . w1 w2 ..."); a judge
that checks membership says "in the list: yes" far more often when it does.
Prints the yes-rate of both groups. Standard library only.

    python3 benchmarks/demo/judge_membership.py runs/demo/iter-1 [runs/demo/iter-2 ...]
"""
import glob
import json
import sys


def verdicts(text):
    answer = recall = member = None
    for line in text.split("\n"):
        if line.startswith("Answer: "):
            answer = line[len("Answer: "):].strip()
        elif line.startswith("recall: "):
            recall = line.split(". ", 1)[1].split() if ". " in line else []
        elif line.startswith("in the list: "):
            rest = line[len("in the list: "):].split()
            member = rest[0] if rest else None
    return answer, recall, member


def main(folders):
    if not folders:
        print(__doc__.strip())
        return 2
    for folder in folders:
        counts = {(True, "yes"): 0, (True, "no"): 0, (False, "yes"): 0, (False, "no"): 0}
        files = sorted(glob.glob(folder + "/judgements/part-*.jsonl"))
        if not files:
            print(f"{folder}: no judgements/part-*.jsonl", file=sys.stderr)
            return 1
        for path in files:
            with open(path) as f:
                for line in f:
                    answer, recall, member = verdicts(json.loads(line).get("text", ""))
                    if answer is not None and recall is not None and member in ("yes", "no"):
                        counts[(answer in recall, member)] += 1
        n_in = counts[(True, "yes")] + counts[(True, "no")]
        n_out = counts[(False, "yes")] + counts[(False, "no")]
        print(f"{folder}: 'in the list: yes' when the answer is in its recall line "
              f"{counts[(True, 'yes')] / max(1, n_in):.3f} (n={n_in}), when it is not "
              f"{counts[(False, 'yes')] / max(1, n_out):.3f} (n={n_out})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
