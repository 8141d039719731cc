#!/usr/bin/env bash
# The demo's effect over seeds (issue: M2 and M3 beat M1 on objective accuracy
# by more than seed-to-seed noise): runs `srlm demo` once per seed, collects
# each model's held-out accuracy and judge agreement from the demo's table, and
# prints mean and spread (sample standard deviation) per model and of the gains
# M2 - M1 and M3 - M1, plus the wall time of each run.
#
#   benchmarks/demo/bench_seeds.sh [SEED ...]          (default seeds: 1 2 3)
#   SRLM_BIN=build/srlm OUT=/tmp/demo-seeds benchmarks/demo/bench_seeds.sh 1 2 3
set -euo pipefail
bin="${SRLM_BIN:-build/srlm}"
out="${OUT:-/tmp/srlm-demo-seeds}"
seeds=("$@")
[ ${#seeds[@]} -gt 0 ] || seeds=(1 2 3)
mkdir -p "$out"
echo "machine: $(nproc --all) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); $(date -u +%F)"
for s in "${seeds[@]}"; do
  rm -rf "$out/seed-$s"
  t0=$(date +%s)
  "$bin" demo --seed "$s" --out "$out/seed-$s" --quiet > "$out/seed-$s.txt" 2> "$out/seed-$s.err"
  echo "seed $s: $(( $(date +%s) - t0 )) s"
  grep -E "^M[0-9]+ +[0-9.]+ " "$out/seed-$s.txt" | awk -v s="$s" '{print s, $1, $2, $3}' >> "$out/table.$$"
done
awk '
  { acc[$2, $1] = $2; a[$2] += $3; a2[$2] += $3 * $3; g[$2] += $4; g2[$2] += $4 * $4; n[$2]++;
    A[$1, $2] = $3; models[$2] = 1; if (!($1 in seeds)) order[++ns] = $1; seeds[$1] = 1 }
  function sd(s, s2, k) { return k > 1 ? sqrt((s2 - s * s / k) / (k - 1)) : 0 }
  END {
    printf "%-6s %-26s %-26s\n", "model", "accuracy mean (sd)", "judge agreement mean (sd)";
    for (m = 1; m <= 16; m++) { k = "M" m; if (!(k in n)) continue;
      printf "%-6s %.3f (%.3f)%13s %.3f (%.3f)\n", k, a[k] / n[k], sd(a[k], a2[k], n[k]), "", g[k] / n[k], sd(g[k], g2[k], n[k]) }
    for (m = 2; m <= 16; m++) { k = "M" m; if (!(k in n)) continue;
      s = 0; s2 = 0; c = 0;
      for (i = 1; i <= ns; i++) { x = order[i]; d = A[x, k] - A[x, "M1"]; s += d; s2 += d * d; c++ }
      printf "gain %s - M1: mean %+.3f, sd %.3f, per seed (in the order run):", k, s / c, sd(s, s2, c);
      for (i = 1; i <= ns; i++) printf " %+.3f", A[order[i], k] - A[order[i], "M1"]; printf "\n" }
  }' "$out/table.$$"
rm -f "$out/table.$$"
