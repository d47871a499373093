#!/usr/bin/env bash
# The suite installed from a wheel, used from a folder that is not our checkout and that holds
# folders named tasks/, benchmark/ and baselines/ of its own (as a researcher's repository does):
# run, score and report must all work and the surveyed Table 1 rows must be printed.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

python3 -m pip wheel -q --no-deps --wheel-dir "$work/dist" "$repo"
wheel="$(ls "$work"/dist/avcl_bench-*.whl)"
python3 -m venv "$work/venv"
# shellcheck disable=SC1091
. "$work/venv/bin/activate"
pip install -q torch==2.13.0
pip install -q "$wheel"

cd "$work"
for shadow in tasks benchmark baselines; do   # a user's own packages with our old top-level names
  mkdir -p "$shadow"
  printf 'raise ImportError("the user'"'"'s own %s package was imported by avcl-bench")\n' "$shadow" > "$shadow/__init__.py"
done
export AVCL_CACHE="$work/cache"

python - <<'PY'
import importlib.util
import avcl_bench
assert "site-packages" in avcl_bench.__file__, avcl_bench.__file__
for bare in ("benchmark", "tasks", "baselines"):
    spec = importlib.util.find_spec(bare)
    assert spec is None or "site-packages" not in str(spec.origin), f"bare '{bare}' resolves into the wheel: {spec}"
print("wheel namespace ok:", avcl_bench.__file__, avcl_bench.__version__)
PY

avcl-bench run --quick --tasks retrieval --no-progress > run.txt
test -f results/runs/avsynth/retrieval/random/*.json || { echo "no record under ./results/runs"; exit 1; }
grep -q "Surveyed" run.txt || { cat run.txt; echo "run printed no surveyed rows"; exit 1; }
grep -q '"git_commit"' -r results/runs && { echo "a wheel install stamped a git commit"; exit 1; }

python - <<'PY'
import numpy as np
rng = np.random.default_rng(0)
np.savez("pred.npz", audio=rng.normal(size=(20, 8)), visual=rng.normal(size=(20, 8)))
np.savez("ref.npz", audio_labels=np.arange(20) % 4, visual_labels=np.arange(20) % 4)
PY
avcl-bench score retrieval --pred pred.npz --ref ref.npz --json | python -c "import json,sys; m=json.load(sys.stdin)['metrics']; assert 'mAP' in m, m"

avcl-bench report --results results/runs --format md --out report.md > /dev/null
grep -q "Surveyed" report.md || { echo "report has no surveyed rows"; exit 1; }
python -m avcl_bench --version >/dev/null 2>&1 || python -m avcl_bench list tasks > /dev/null
echo "wheel check passed"
