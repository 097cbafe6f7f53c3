#!/usr/bin/env bash
# The main job, offline, from a fresh clone: set up, then run the demo (README's first command).
#   bash recipes/demo.sh             # full: about 18 minutes on 2 CPU cores
#   bash recipes/demo.sh --quick     # about 10 minutes
# Writes demo-output/report.html (open it in a browser) and report.md.
set -euo pipefail
cd "$(dirname "$0")/.."
bash recipes/setup.sh
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec .venv/bin/transferkit demo "$@"
