"""The extension recipe on real weights and real data (EfficientNet-Lite0, MNIST digits 0-4 then 5-9), with margins.

The margins are what the README states, with room for a smaller run (50 digits per class here, 100 there):
the default protection keeps most of the old classes without any old example (forgetting under 20 points,
against about 95 without protection), within 8 points of joint training on every class; the extended folder
reloads with the same scores.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from transferkit import load

pytestmark = pytest.mark.real
RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "extend_classes.py"


def test_extend_classes_recipe_on_mnist(tmp_path):
    run = subprocess.run([sys.executable, str(RECIPE), "--per-class", "50", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    table = json.loads((tmp_path / "extend_classes.json").read_text())
    arms = {a["name"]: a["scores"] for a in table["arms"]}
    assert table["previous_old_accuracy"] > 0.9  # the stage-1 probe on digits 0-4
    assert arms["replace head"]["accuracy_old_classes"] == 0.0 and arms["extend, no protection"]["forgetting"] > 0.8
    protected, joint = arms["extend, protected"], arms["joint training"]
    assert protected["forgetting"] < 0.2, protected
    assert joint["accuracy"] - protected["accuracy"] < 0.08, (protected, joint)
    assert protected["accuracy_new_classes"] > 0.8, protected
    reloaded = load(tmp_path / "digits-0-9")
    assert reloaded.labels == [str(d) for d in range(10)]
    saved = json.loads((tmp_path / "digits-0-9" / "transferkit.json").read_text())["evaluations"][-1]["metrics"]
    assert saved["forgetting"] == pytest.approx(protected["forgetting"])
    assert "Extension compared with head replacement" in (tmp_path / "digits-0-9" / "README.md").read_text()
