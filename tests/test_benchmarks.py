"""benchmarks/few_shot.py --quick runs end to end on the real packaged weights and writes its JSON.

Speed is measured by the benchmark, never asserted here; this only checks that the harness works:
every selected arm ran on every quick task with a finite score, and the frozen-feature baseline
beats the majority class on tweets (a broken feature extractor would not).
"""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.real
SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "few_shot.py"


def test_few_shot_quick_writes_every_arm(tmp_path):
    out = tmp_path / "few_shot-quick.json"
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--output", str(out),
                           "--cache-dir", str(tmp_path / "cache")],
                          capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-5000:]}"
    report = json.loads(out.read_text())

    assert report["quick"] is True and report["errors"] == []
    assert {"cpu_count", "platform", "date", "versions"} <= set(report["machine"])
    assert {"torch", "transformers", "timm", "setfit"} <= set(report["machine"]["versions"])
    arms = report["arms"]
    assert {"tk-auto", "tk-linear-probe", "lr-frozen", "tfidf-lr", "hog-lr"} <= set(arms)
    assert set(report["tasks"]) == {"tweets", "digits-mnist5k"}
    for task, info in report["tasks"].items():
        expected = {a for a, spec in arms.items() if info["modality"] in spec["modalities"]}
        ran = {r["arm"] for r in report["runs"] if r["task"] == task}
        assert ran == expected, f"{task}: arms {expected - ran} did not run"
    for run in report["runs"]:
        for metric in ("accuracy", "f1_macro"):
            assert math.isfinite(run[metric]) and 0.0 <= run[metric] <= 1.0, run
        assert math.isfinite(run["seconds"]) and run["seconds"] >= 0, run
        assert run["n_train"] == run["k"] * len(report["tasks"][run["task"]]["labels"])

    tweets = report["tasks"]["tweets"]
    lr = [r for r in report["runs"] if r["task"] == "tweets" and r["arm"] == "lr-frozen"]
    assert lr and all(r["accuracy"] > tweets["majority_class_accuracy"] for r in lr), (lr, tweets)
    assert "tweets" in proc.stdout and "lr-frozen" in proc.stdout  # the side-by-side table was printed


def test_extension_quick_writes_every_arm(tmp_path):
    """benchmarks/extension.py --quick: every arm ran on the quick setting with scores in range, and the harness's
    own sanity: replacing the head loses every old class, the default protection keeps most of them."""
    out = tmp_path / "extension-quick.json"
    script = SCRIPT.parent / "extension.py"
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run([sys.executable, str(script), "--quick", "--output", str(out)],
                          capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-5000:]}"
    report = json.loads(out.read_text())
    assert report["quick"] is True and report["errors"] == []
    arms = {r["arm"]: r for r in report["runs"]}
    assert set(arms) == {"replace", "none", "default", "joint", "means-only", "align", "exemplars10"}
    for run in report["runs"]:
        assert all(0.0 <= run[k] <= 1.0 for k in ("accuracy", "old", "new")) and -1 <= run["forgetting"] <= 1, run
    assert arms["replace"]["old"] == 0.0 and arms["default"]["old"] > 0.6
    assert "default" in proc.stdout and "joint" in proc.stdout  # the side-by-side table was printed
