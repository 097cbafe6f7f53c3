"""Checkpoint and resume: a real process killed mid-epoch (SIGKILL) or stopped with Ctrl-C (SIGINT), then
resumed, ends with exactly the weights of a run that was never stopped."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from transferkit import adapt, load, testing
from transferkit.errors import ConfigError

# 24 images, batch 4: 6 steps per epoch; 20 steps = 3 epochs and a third. Augmentation on (random crops)
# and BatchNorm buffers training: the generators and buffers must come back too.
RUN = dict(strategy="full", max_steps=20, batch_size=4, seed=3, progress_bar=False)

SCRIPT = textwrap.dedent("""
    import os, signal, sys
    import torch
    torch.set_num_threads(int(os.environ["TK_THREADS"]))  # the test process's count: sums must match bit for bit
    from transferkit import adapt, testing
    from transferkit.training import checkpoint

    model, out, how, at = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    real = checkpoint.Checkpointing.save

    def save(self, *args, **kwargs):
        real(self, *args, **kwargs)
        if how == "kill" and args[4]["step"] == at:  # state: right after the checkpoint at this step
            os.kill(os.getpid(), signal.SIGKILL)

    checkpoint.Checkpointing.save = save
    if how == "interrupt":  # Ctrl-C arrives in the middle of a step
        real_step = checkpoint.StopRequest.agreed
        calls = iter(range(10**6))
        def agreed(self, acc):
            if next(calls) == at:
                os.kill(os.getpid(), signal.SIGINT)
            return real_step(self, acc)
        checkpoint.StopRequest.agreed = agreed
    adapt(model, testing.toy_images(8), output_dir=out, save_every=2, **{RUN})
    print("finished")
""")


def _run(tmp_path: Path, model: str, out: Path, how: str, at: int) -> subprocess.CompletedProcess:
    script = tmp_path / "train.py"
    script.write_text(SCRIPT.replace("{RUN}", repr(RUN)))
    threads = str(torch.get_num_threads())
    env = dict(os.environ, OMP_NUM_THREADS=threads, TK_THREADS=threads, HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, str(script), model, str(out), how, str(at)], capture_output=True,
                          text=True, env=env, timeout=600)


@pytest.fixture(scope="module")
def uninterrupted(tiny_models):
    return adapt(tiny_models["cnn"], testing.toy_images(8), **RUN)


def _same_weights(a, b) -> None:
    sa, sb = a.backbone.model.state_dict(), b.backbone.model.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


@pytest.mark.parametrize("at", [8, 14], ids=["mid-epoch-2", "mid-epoch-3"])
def test_sigkill_then_resume_gives_the_uninterrupted_weights(at, tiny_models, tmp_path, uninterrupted):
    out = tmp_path / "model"
    killed = _run(tmp_path, tiny_models["cnn"], out, "kill", at)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert not out.exists() and (tmp_path / ".model.checkpoint" / "last" / "transferkit.json").is_file()
    resumed = adapt(tiny_models["cnn"], testing.toy_images(8), output_dir=out, save_every=2, resume=True, **RUN)
    _same_weights(resumed, uninterrupted)
    assert resumed.history == uninterrupted.history or [r["train_loss"] for r in resumed.history] == pytest.approx(
        [r["train_loss"] for r in uninterrupted.history])
    _same_weights(load(out), uninterrupted)
    assert not (tmp_path / ".model.checkpoint").exists()  # the checkpoint has served


def test_ctrl_c_checkpoints_says_how_to_resume_and_exits_130(tiny_models, tmp_path, uninterrupted):
    out = tmp_path / "model"
    stopped = _run(tmp_path, tiny_models["cnn"], out, "interrupt", 9)
    assert stopped.returncode == 130, stopped.stderr[-2000:]
    assert "Traceback" not in stopped.stderr and "finished" not in stopped.stdout
    lines = [line for line in stopped.stderr.splitlines() if "interrupted" in line]
    assert len(lines) == 1 and "resume=True" in lines[0] and str(out) in lines[0]
    resumed = adapt(tiny_models["cnn"], testing.toy_images(8), output_dir=out, resume=True, **RUN)
    _same_weights(resumed, uninterrupted)


def test_resume_refuses_a_checkpoint_of_another_run(tiny_models, tmp_path):
    out = tmp_path / "model"
    assert _run(tmp_path, tiny_models["cnn"], out, "kill", 4).returncode == -9
    with pytest.raises(ConfigError, match="another run"):
        adapt(tiny_models["cnn"], testing.toy_images(8), output_dir=out, resume=True, **{**RUN, "seed": 4})


@pytest.mark.parametrize("options", [dict(resume=True), dict(save_every=5)])
def test_checkpoint_options_need_an_output_dir(options, tiny_models):
    with pytest.raises(ConfigError, match="need output_dir"):
        adapt(tiny_models["cnn"], testing.toy_images(4), **options, **RUN)


def test_resume_without_a_checkpoint_starts_fresh(tiny_models, tmp_path, uninterrupted):
    run = adapt(tiny_models["cnn"], testing.toy_images(8), output_dir=tmp_path / "m", resume=True, **RUN)
    _same_weights(run, uninterrupted)
