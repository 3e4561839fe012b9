#!/usr/bin/env bash
# Mutation testing of the numeric packages with mutmut, under KERAS_BACKEND=jax.
# Not part of CI: it takes tens of minutes of CPU.
#
# Each package is mutated in its own copy of the committed tree (mutmut rewrites
# the sources it mutates, so the working tree is never touched), and its mutants
# are tested by tests/<package> only. Testing every mutant takes hours on a small
# machine, so a seeded random sample of SAMPLE mutants per package is run and the
# score is given with its 95% (Wilson) interval. Lines that hold only an error
# message string are not mutated. Packages run in order, each within an equal
# share of the time left of BUDGET_MINUTES (generation and mutmut's first pass
# over the tests included); the report says which packages were done and how
# many of their sampled mutants were checked. Tests run at `nice -n 19`.
#
# Usage: bash benchmarks/mutation.sh
# Environment: PACKAGES, SAMPLE (25), SEED (0), BUDGET_MINUTES (40),
# CHILDREN (2 test processes), PY, OUT (the report), MUTMUT_TOOLS (where
# mutmut is installed with pip --target when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY="${PY:-$ROOT/.venv/bin/python}"
PACKAGES="${PACKAGES:-evaluation optimizers layers losses distribute}"
SAMPLE="${SAMPLE:-25}"
SEED="${SEED:-0}"
BUDGET_MINUTES="${BUDGET_MINUTES:-40}"
CHILDREN="${CHILDREN:-2}"
MUTMUT_VERSION=3.8.1
MUTMUT_TOOLS="${MUTMUT_TOOLS:-${TMPDIR:-/tmp}/keras_imsvd_mutmut_$MUTMUT_VERSION}"
OUT="${OUT:-$ROOT/benchmarks/results/mutation_$(date +%Y-%m-%d).txt}"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

if ! PYTHONPATH="$MUTMUT_TOOLS" "$PY" -c "import mutmut" 2>/dev/null; then
  "$PY" -m pip install --quiet --target "$MUTMUT_TOOLS" "mutmut==$MUTMUT_VERSION"
fi
mutmut() {
  PYTHONPATH="$MUTMUT_TOOLS" "$PY" "$MUTMUT_TOOLS/bin/mutmut" "$@"
}
export KERAS_BACKEND=jax
export KERAS_IMSVD_SHARED="${KERAS_IMSVD_SHARED:-$ROOT/../shared}"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
# Every mutant runs in a fresh process: share XLA compilations between them.
export JAX_COMPILATION_CACHE_DIR="$WORK/jax_cache"
export JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0

# One package: writes $WORK/<package>.json with its counts and survivors.
run_package() {
  local package=$1 seconds=$2
  local dir="$WORK/$package"
  local start=$SECONDS
  mkdir -p "$dir"
  local commit
  commit=$(git rev-parse --short HEAD)
  git archive "$commit" | tar -x -C "$dir"
  cat >> "$dir/tests/conftest.py" <<'EOF_SHIM'


# Appended for mutation testing, in a temporary copy only. mutmut wraps every
# function in a trampoline (functools.wraps), and Keras reads the arguments of a
# layer's __init__ with inspect.getfullargspec, which does not follow
# __wrapped__: let it see the wrapped function.
import inspect as _inspect  # noqa: E402
import types as _types  # noqa: E402

import keras.src.ops.operation as _operation  # noqa: E402


class _UnwrappingInspect(_types.ModuleType):
    def __getattr__(self, name):
        return getattr(_inspect, name)

    @staticmethod
    def getfullargspec(func):
        return _inspect.getfullargspec(_inspect.unwrap(func))


_operation.inspect = _UnwrappingInspect("inspect")
EOF_SHIM
  cat > "$dir/setup.cfg" <<EOF
[mutmut]
source_paths=keras_imsvd
only_mutate=keras_imsvd/$package/*
pytest_add_cli_args_test_selection=tests/$package/
pytest_add_cli_args=-p
    no:cacheprovider
process_isolation=forkserver
do_not_mutate_patterns=^\s*(raise \w+\(|warnings\.warn\()?\s*f?("[^"]*"|'[^']*')\s*\)?,?\s*$
EOF
  cd "$dir"
  # Generation and the first pass over the tests (which tests reach which
  # function). No mutant matches the filter, so mutmut stops right after it.
  nice -n 19 timeout "$seconds" env PYTHONPATH="$MUTMUT_TOOLS" \
    "$PY" "$MUTMUT_TOOLS/bin/mutmut" run no-such-mutant > prepare.log 2>&1 || true
  if [ ! -f mutants/mutmut-stats.json ]; then
    echo "{\"package\": \"$package\", \"error\": \"mutmut's first pass failed\"}" \
      > "$WORK/$package.json"
    tail -20 prepare.log
    cd "$ROOT"
    return
  fi
  mutmut results --all true > all.txt
  "$PY" - all.txt "$SAMPLE" "$SEED" > sample.txt <<'EOF_SAMPLE'
import random
import sys

names = sorted(line.split(":")[0].strip() for line in open(sys.argv[1]) if ":" in line)
sample = random.Random(int(sys.argv[3])).sample(names, min(int(sys.argv[2]), len(names)))
print("\n".join(sorted(sample)))
EOF_SAMPLE
  local left=$((seconds - (SECONDS - start)))
  local rc=0
  if [ "$left" -gt 30 ]; then
    # shellcheck disable=SC2046  # one name per line, no spaces
    nice -n 19 timeout "$left" env PYTHONPATH="$MUTMUT_TOOLS" \
      "$PY" "$MUTMUT_TOOLS/bin/mutmut" run --max-children "$CHILDREN" \
      $(cat sample.txt) > run.log 2>&1 || rc=$?
  else
    rc=124
  fi
  mutmut results --all true > results.txt
  "$PY" - "$package" all.txt sample.txt results.txt "$rc" "$((SECONDS - start))" "$commit" \
    > "$WORK/$package.json" <<'EOF_COUNT'
import json
import sys

package, all_path, sample_path, results_path, rc, seconds, commit = sys.argv[1:]
sample = set(open(sample_path).read().split())
status = {}
for line in open(results_path):
    if ":" in line:
        name, value = line.split(":", 1)
        status[name.strip()] = value.strip()
total = sum(1 for line in open(all_path) if ":" in line)
checked = {name: status[name] for name in sample if status[name] != "not checked"}
print(json.dumps({
    "package": package,
    "commit": commit,
    "mutants": total,
    "sampled": len(sample),
    "status": checked,
    "timed_out": rc == "124",
    "seconds": int(seconds),
}))
EOF_COUNT
  # The diff of each mutant that was not killed.
  : > "$WORK/$package.diffs"
  for name in $("$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); print(' '.join(n for n, s in sorted(d['status'].items()) if s in ('survived', 'no tests')))" "$WORK/$package.json"); do
    mutmut show "$name" >> "$WORK/$package.diffs" 2>&1 || true
    echo >> "$WORK/$package.diffs"
  done
  cd "$ROOT"
}

budget=$((BUDGET_MINUTES * 60))
set -- $PACKAGES
done_packages=()
while [ $# -gt 0 ]; do
  left=$((budget - SECONDS))
  if [ "$left" -lt 120 ]; then
    break
  fi
  share=$((left / $#))
  echo "=== $1: up to $share s ==="
  run_package "$1" "$share"
  done_packages+=("$1")
  shift
done
skipped=("$@")

"$PY" - "$WORK" "$OUT" "$SAMPLE" "$SEED" \
  "$BUDGET_MINUTES" "$MUTMUT_VERSION" "$SECONDS" "${done_packages[*]:-}" \
  "${skipped[*]:-}" <<'EOF_REPORT'
import datetime
import json
import math
import sys
from pathlib import Path

work, out, sample, seed, budget, version, seconds, done, skipped = sys.argv[1:]
KILLED = {"killed", "timeout", "caught by type check", "segfault"}
NOT_COUNTED = {"skipped", "check was interrupted by user", "suspicious"}


def wilson(k, n, z=1.96):
    if not n:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


lines = [
    f"Mutation testing of keras_imsvd, {datetime.date.today()}",
    f"mutmut {version}, KERAS_BACKEND=jax, mutants of keras_imsvd/<package> tested "
    "by tests/<package> only; lines holding only an error message not mutated.",
    f"A seeded sample (seed {seed}) of {sample} mutants per package; budget "
    f"{budget} min, used {int(seconds) // 60} min.",
    "Score = killed / (killed + survived + no tests); timeouts count as killed.",
    "",
    f"{'package':<12}{'mutants':>8}{'sampled':>8}{'checked':>8}{'killed':>7}"
    f"{'survived':>9}{'no test':>8}{'score':>7}  95% interval  minutes  commit",
]
survivors = []
for package in done.split():
    data = json.loads(Path(work, f"{package}.json").read_text())
    if "error" in data:
        lines.append(f"{package:<12}not done: {data['error']}")
        continue
    status = data["status"]
    killed = sum(s in KILLED for s in status.values())
    survived = sum(s == "survived" for s in status.values())
    untested = sum(s == "no tests" for s in status.values())
    counted = sum(s not in NOT_COUNTED for s in status.values())
    low, high = wilson(killed, counted)
    score = f"{killed / counted:.2f}" if counted else "-"
    note = " (time share ran out)" if data["timed_out"] else ""
    lines.append(
        f"{package:<12}{data['mutants']:>8}{data['sampled']:>8}{len(status):>8}"
        f"{killed:>7}{survived:>9}{untested:>8}{score:>7}  [{low:.2f}, {high:.2f}]"
        f"  {data['seconds'] / 60:7.1f}  {data['commit']}{note}"
    )
    diffs = Path(work, f"{package}.diffs")
    if diffs.exists() and diffs.read_text().strip():
        survivors += ["", f"## {package}", "", diffs.read_text().rstrip()]
for package in skipped.split():
    lines.append(f"{package:<12}not run: the time budget was spent")
print("\n".join(lines))
lines += ["", "# Mutants not killed (survived or no test reaches them)"] + survivors
Path(out).write_text("\n".join(lines) + "\n")
print(f"report: {out}")
EOF_REPORT
