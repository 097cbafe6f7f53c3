"""The demo's quick mode end to end, through the installed CLI, on the real packaged weights and data."""
import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.real


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    proc = subprocess.run([sys.executable, "-m", "transferkit.cli", "demo", "--quick", "--output-dir", str(out)],
                          capture_output=True, text=True, timeout=1800)  # a hang guard, not a speed test
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc.stdout, json.loads((out / "results.json").read_text())


def _summary(results, section):
    point = results["sections"][section]["points"][0]
    return point, {s["kind"] if s["kind"] != "classic" else s["arm"]: s for s in point["summary"]}


def test_demo_writes_the_report(demo):
    out, stdout, results = demo
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 6 and "Verdict:" in html
    assert (out / "report.md").is_file() and len(list(out.glob("*.png"))) == 6
    assert "Report:" in stdout and "transfer" in stdout  # the console prints the tables
    assert results["env"]["machine"] and results["env"]["versions"]["timm"]


def _versus_scratch(results, section):
    point, rows = _summary(results, section)
    assert point["per_class"] == 10 and len(point["seeds"]) >= 3
    versus = next(p for p in point["paired"] if p["a"] == rows["transfer"]["arm"] and p["b"] == rows["scratch"]["arm"])
    return versus, rows["transfer"], rows["scratch"]


def test_transfer_matches_scratch_on_digits_at_a_fraction_of_the_compute(demo):
    """Digits, 10 per class: the same network trained from scratch with the same step budget (at least
    200 steps) comes close here: in the quick run's draws it was within a few points of the probe and
    won one seed of three (+4.0, +10.3, -3.7 on 2026-11-30, after the per-batch augmentation seeds
    changed its training order). What holds: transfer is at least as accurate on average, paired,
    and trains in under a tenth of the time (a solved probe against 200 steps of the whole network)."""
    versus, transfer, scratch = _versus_scratch(demo[2], 0)
    assert versus["mean"] > 0, versus
    assert transfer["seconds"] * 10 < scratch["seconds"], (transfer["seconds"], scratch["seconds"])


def test_transfer_beats_scratch_on_every_seed_on_tweets(demo):
    """Tweets, 10 per class: MiniLM's pretraining wins every seed (quick run, 2026-11-30: +6.0, +1.7, +8.0)."""
    versus, _, _ = _versus_scratch(demo[2], 1)
    assert versus["wins"] == versus["n"] >= 3 and versus["mean"] > 3, versus


@pytest.mark.parametrize("section", [0, 1])
def test_verdict_agrees_with_the_table(demo, section):
    """The recommended arm is the best, or paired-as-good and no slower; a transfer that is not
    as good as the best is said to lose (the rules of evidence/verdict.py, from results.json)."""
    _, _, results = demo
    point, _ = _summary(results, section)
    summary = point["summary"]
    best = max(summary, key=lambda s: s["mean"])
    picked = next(s for s in summary if point["verdict"].startswith(f"Use {s['arm']}:"))
    versus_best = {p["a"]: p for p in point["paired"] if p["b"] == best["arm"]}
    assert picked is best or (versus_best[picked["arm"]]["as_good"] and picked["seconds"] <= best["seconds"])
    transfer = next(s for s in summary if s["kind"] == "transfer")
    if transfer is not best and not versus_best[transfer["arm"]]["as_good"]:
        assert "Transfer did not win" in point["verdict"]
