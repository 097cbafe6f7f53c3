"""Nothing the user has is ever lost: destinations are checked before training, and a save killed at
any instant leaves the complete old folder or the complete new one, never neither (README "Safety")."""
from __future__ import annotations

import errno
import multiprocessing
import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytest

from transferkit import adapt, load, storage, testing
from transferkit.errors import ConfigError, TransferkitError

FAST = dict(strategy="full", epochs=1, progress_bar=False)


@pytest.fixture(scope="module")
def images():
    return testing.toy_images(3)


@pytest.fixture(scope="module")
def two_models(tiny_models, images):
    """Two different adapted models: the 'old' and the 'new' content of one destination."""
    return adapt(tiny_models["cnn"], images, seed=0, **FAST), adapt(tiny_models["cnn"], images, seed=1, **FAST)


def _user_folder(root: Path) -> dict[str, bytes]:
    (root / "sub").mkdir(parents=True)
    (root / "notes.txt").write_text("keep me")
    (root / "sub" / "data.bin").write_bytes(b"\x00\x01")
    return _snapshot(root)


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


# --- destinations that are refused, before any training -------------------------------------------------
def _cases(tmp: Path):
    """(destination, words the message must contain) for each refused destination."""
    user = tmp / "user-files"
    _user_folder(user)
    a_file = tmp / "a-file.txt"
    a_file.write_text("mine")
    data = tmp / "project" / "dataset"
    data.mkdir(parents=True)
    return {
        "user folder": (user, ["not written by transferkit", "notes.txt", "Nothing was changed"]),
        "empty string": ("", ["''", "give a folder name"]),
        "working directory": (".", ["the working directory", "sub-folder"]),
        "parent of the working directory": ("..", ["the working directory"]),
        "home folder": ("~", ["your home folder"]),
        "root": ("/", ["the working directory"]) if Path.cwd() != Path("/") else ("/", ["root"]),
        "a file": (a_file, ["is a file", "Choose another name"]),
        "folder holding the data": (tmp / "project", ["holds your data", str(data)]),
    }


CASE_NAMES = ["user folder", "empty string", "working directory", "parent of the working directory", "home folder",
              "root", "a file", "folder holding the data"]


@pytest.mark.parametrize("overwrite", [False, True])
@pytest.mark.parametrize("case", CASE_NAMES)
def test_save_refuses_and_changes_nothing(case, overwrite, two_models, tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    (work / "keep.txt").write_text("cwd file")
    target, words = _cases(tmp_path)[case]
    before = _snapshot(tmp_path)
    with pytest.raises(ConfigError) as info:
        if case == "folder holding the data":  # only adapt() knows where the data is
            storage.check_target(target, overwrite, data=[tmp_path / "project" / "dataset"])
        else:
            two_models[0].save(target, overwrite=overwrite)
    for w in words:
        assert w in str(info.value), (w, str(info.value))
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("case", ["user folder", "working directory", "folder holding the data", "empty string"])
def test_adapt_output_dir_is_refused_before_training(case, tiny_models, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    target, words = _cases(tmp_path)[case]
    before = _snapshot(tmp_path)
    data = testing.toy_images(2)
    if case == "folder holding the data":  # an image folder inside the destination
        for i, (img, label) in enumerate(data):
            (tmp_path / "project" / "dataset" / label).mkdir(exist_ok=True)
            img.save(tmp_path / "project" / "dataset" / label / f"{i}.png")
        data = tmp_path / "project" / "dataset"
        before = _snapshot(tmp_path)

    def no_training(*args, **kwargs):
        raise AssertionError("training started before the destination was checked")

    monkeypatch.setattr("transferkit.api.resolve_backbone", no_training)
    with pytest.raises(ConfigError) as info:
        adapt(tiny_models["cnn"], data, output_dir=target, overwrite=True, **FAST)
    assert all(w in str(info.value) for w in words), str(info.value)
    assert _snapshot(tmp_path) == before


def test_adapt_never_overwrites_implicitly(tiny_models, images, tmp_path):
    out = tmp_path / "model"
    adapt(tiny_models["cnn"], images, output_dir=out, **FAST)
    saved = _snapshot(out)
    with pytest.raises(ConfigError, match="holds a transferkit model; pass overwrite=True"):
        adapt(tiny_models["cnn"], images, output_dir=out, seed=3, **FAST)
    assert _snapshot(out) == saved
    adapt(tiny_models["cnn"], images, output_dir=out, seed=3, overwrite=True, **FAST)
    assert _snapshot(out) != saved


def test_unwritable_destination_fails_before_training(tiny_models, images, tmp_path, monkeypatch):
    # root ignores permission bits, so the refusal of the probe write is simulated
    real = Path.write_bytes

    def refuse(self, data):
        if self.name.startswith(".transferkit-write-test-"):
            raise PermissionError(errno.EACCES, "Permission denied")
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", refuse)
    monkeypatch.setattr("transferkit.api.resolve_backbone", lambda *a, **k: pytest.fail("training started"))
    with pytest.raises(ConfigError, match="cannot write into .*Permission denied.*Choose a folder you can write to"):
        adapt(tiny_models["cnn"], images, output_dir=tmp_path / "m", **FAST)


def test_replace_own_folder_and_write_into_empty_folder(two_models, tmp_path, images):
    old, new = two_models
    empty = tmp_path / "empty"
    empty.mkdir()
    old.save(empty)  # an empty folder may be written into
    with pytest.raises(ConfigError, match="pass overwrite=True"):
        new.save(empty)
    new.save(empty, overwrite=True)
    np.testing.assert_array_equal(load(empty).predict_proba(images), new.predict_proba(images))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]  # nothing left beside it


def test_full_disk_keeps_the_old_model(two_models, tmp_path, images, monkeypatch):
    old, new = two_models
    target = tmp_path / "m"
    old.save(target)
    before = _snapshot(target)

    def disk_full(folder):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(storage, "_fsync_tree", disk_full)
    with pytest.raises(TransferkitError, match="No space left on device.*previous model there is unchanged"):
        new.save(target, overwrite=True)
    assert _snapshot(target) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


# --- SIGKILL at every point of a save -------------------------------------------------------------------
def _kill_at(n: int, record: bool = False):
    """A profiler that SIGKILLs this process at the n-th C-level call (file and rename operations included)."""
    count = [0]
    names = []

    def profile(frame, event, arg):
        if event == "c_call":
            count[0] += 1
            if record:
                names.append(getattr(arg, "__name__", type(arg).__name__))
            elif count[0] == n:
                os.kill(os.getpid(), signal.SIGKILL)

    return profile, names


def _child(model, target, n, conn, exchange=True):
    if not exchange:  # the two-rename fallback of systems without renameat2
        storage._exchange = lambda a, b: False
    profile, names = _kill_at(n, record=conn is not None)
    sys.setprofile(profile)
    model.save(target, overwrite=True)
    sys.setprofile(None)
    if conn is not None:
        conn.send(names)  # a pipe sends before returning; a Queue's feeder thread would die with os._exit
    os._exit(0)


@pytest.mark.skipif(sys.platform != "linux", reason="fork-based kill points")
@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
def test_sigkill_during_save_never_loses_the_model(exchange, two_models, images, tmp_path):
    old, new = two_models
    ctx = multiprocessing.get_context("fork")
    expected = {"old": old.predict_proba(images), "new": new.predict_proba(images)}
    target = tmp_path / "m"
    old.save(target)

    receiver, sender = ctx.Pipe(duplex=False)  # a dry run counts the C-level calls of one save
    p = ctx.Process(target=_child, args=(new, target, 0, sender, exchange))
    p.start()
    assert receiver.poll(120), "the dry-run save did not finish"
    names = receiver.recv()
    p.join(60)
    old.save(target, overwrite=True)  # back to the old content
    total = len(names)
    critical = [i + 1 for i, name in enumerate(names) if name in ("rename", "renameat2", "_CFuncPtr", "rmtree", "unlink")]
    spread = set(np.linspace(1, total, 24).astype(int).tolist()) if exchange else set()
    points = sorted(spread | set(critical) | {c + 1 for c in critical})
    assert len(points) >= (20 if exchange else 4) and total > 50, (total, points)

    seen = set()
    for n in points:
        p = ctx.Process(target=_child, args=(new, target, n, None, exchange))
        p.start()
        p.join(120)
        assert p.exitcode in (-signal.SIGKILL, 0), p.exitcode
        probs = load(target).predict_proba(images)  # load() recovers a copy left beside a missing target
        which = [k for k, v in expected.items() if np.array_equal(v, probs)]
        assert which, f"kill at call {n}/{total}: the target is neither the old nor the new model"
        seen.add(which[0])
        old.save(target, overwrite=True)  # the next save cleans up the litter and restores the old content
        assert sorted(p.name for p in tmp_path.iterdir()) == ["m"], (n, sorted(os.listdir(tmp_path)))
    assert seen == {"old", "new"}  # the kill points span the swap
