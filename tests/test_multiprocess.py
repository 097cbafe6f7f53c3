"""A real two-process run of the training loop: torchrun starts two CPU ranks (gloo) that train one model.

What must hold: the ranks form one group of two, each sees about half of every epoch's batches,
they end with bit-identical weights and identical histories (losses reduced, metrics gathered over
the whole validation set), and the folder rank 0 saves loads back to those weights and that history.
"""
from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from launch import run_group

from multiprocess_script import toy_data, weights_hash
from transferkit import load

pytestmark = pytest.mark.multiprocess

SCRIPT = Path(__file__).with_name("multiprocess_script.py")
WORLD = 2
BATCH = 4
EPOCHS = 2
TIMEOUT_S = 240


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(model: str, out: Path, strategy: str, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(WORLD),
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
           str(SCRIPT), "--model", model, "--out", str(out), "--strategy", strategy, *extra]
    env = dict(os.environ, ACCELERATE_USE_CPU="1", OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    return run_group(cmd, env, TIMEOUT_S, "torchrun")


def _without_timing(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


@pytest.mark.parametrize("kind,strategy", [("cnn", "freeze"), ("bert", "lora")])
def test_two_processes_train_one_model(tiny_models, tmp_path, kind, strategy):
    run = _launch(tiny_models[kind], tmp_path, strategy)
    files = [tmp_path / f"rank{r}.json" for r in range(WORLD)] + [tmp_path / "model" / "transferkit.json"]
    missing = [str(f.relative_to(tmp_path)) for f in files if not f.is_file()]
    if missing:
        pytest.fail(f"torchrun exited {run.returncode}; missing {missing}; stderr tail:\n{run.stderr[-4000:]}")
    if run.returncode != 0:  # the known gloo teardown abort after all work is done: outputs are checked below
        print(f"torchrun exited {run.returncode} after writing every output; stderr:\n{run.stderr[-4000:]}")

    ranks = [json.loads(f.read_text()) for f in files[:WORLD]]
    assert [r["rank"] for r in ranks] == [r["env_rank"] for r in ranks] == list(range(WORLD))
    assert [r["world_size"] for r in ranks] == [WORLD] * WORLD

    # Each rank's DDP-wrapped model saw its shard: half the batches (rounded up, Accelerate evens them out).
    n_train, n_val = ranks[0]["n_train"], ranks[0]["n_validation"]
    for r in ranks:
        assert len(r["forwards_per_epoch"]) == EPOCHS, r["forwards_per_epoch"]
        for epoch in r["forwards_per_epoch"]:
            assert epoch["train_batches"] == math.ceil(math.ceil(n_train / BATCH) / WORLD), epoch
            assert epoch["eval_batches"] == math.ceil(math.ceil(n_val / BATCH) / WORLD), epoch
    for e in range(EPOCHS):
        assert sum(r["forwards_per_epoch"][e]["train_examples"] for r in ranks) >= n_train
        assert sum(r["forwards_per_epoch"][e]["eval_examples"] for r in ranks) >= n_val

    # One model, not two: identical weights, losses and metrics on every rank.
    first = ranks[0]
    for other in ranks[1:]:
        assert other["weights_sha256"] == first["weights_sha256"], "the ranks' weights diverged"
        assert _without_timing(other["history"]) == _without_timing(first["history"])
        assert other["final_metrics"] == first["final_metrics"]
        assert other["best_epoch"] == first["best_epoch"]
    assert len(first["history"]) == EPOCHS

    loaded = load(tmp_path / "model")
    assert weights_hash(loaded.model) == first["weights_sha256"]
    # result.save() called by every rank: one folder, written once, the same path returned everywhere
    assert {r["saved_to"] for r in ranks} == {str(tmp_path / "again")}
    assert weights_hash(load(tmp_path / "again").model) == first["weights_sha256"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".again")) == []
    assert loaded.history == first["history"]  # rank 0 saved, so its timings too
    best_epoch = loaded.config.resolved["best_epoch"]
    assert best_epoch == first["best_epoch"] and best_epoch is not None

    # The loop restores the best epoch's weights, so the loaded model reproduces that epoch's metrics
    # (which equal the final epoch's only when the best epoch is the last). The gathered validation
    # metrics must count every example once: padding added to even out the ranks is dropped.
    best_row = first["history"][best_epoch - 1]
    metrics = loaded.evaluate(toy_data("image" if kind == "cnn" else "text")[1], batch_size=BATCH)
    expected = {k.removeprefix("eval_"): v for k, v in best_row.items() if k.startswith("eval_")}
    assert metrics == pytest.approx(expected, rel=1e-4, abs=1e-6)


def test_two_processes_stop_together_and_resume_to_the_same_weights(tiny_models, tmp_path):
    """Rank 1 alone is asked to stop mid-epoch: both ranks checkpoint once (rank 0 writes), exit 130; a
    two-process resume (every rank loads) ends with the weights of a run that was never stopped."""
    whole = _launch(tiny_models["cnn"], tmp_path / "whole", "freeze")
    reference = json.loads((tmp_path / "whole" / "rank0.json").read_text())
    stopped = _launch(tiny_models["cnn"], tmp_path / "cut", "freeze", "--stop-at", "2")
    assert stopped.returncode != 0 and "resume=True" in stopped.stderr, stopped.stderr[-3000:]
    assert not (tmp_path / "cut" / "rank0.json").exists()
    assert (tmp_path / "cut" / ".model.checkpoint" / "last" / "transferkit.json").is_file()
    resumed = _launch(tiny_models["cnn"], tmp_path / "cut", "freeze", "--resume")
    ranks = [tmp_path / "cut" / f"rank{r}.json" for r in range(WORLD)]
    if not all(f.is_file() for f in ranks):
        pytest.fail(f"resume exited {resumed.returncode}; stderr tail:\n{resumed.stderr[-4000:]}")
    for f in ranks:
        assert json.loads(f.read_text())["weights_sha256"] == reference["weights_sha256"], whole.stderr[-500:]
