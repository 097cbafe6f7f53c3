"""Where a model folder may be written, and how an old one is replaced without ever being lost.

The rules (README "Safety"):

* A folder is replaced only if transferkit wrote it (it holds ``transferkit.json``, written last,
  so its presence also means the folder is complete) **and** the caller said ``overwrite=True``.
  An empty folder may be written into. Anything else is refused, naming what is in it.
* Never the working directory, the home folder, the filesystem root, a folder that contains
  any of them, or a folder that holds the training data.
* The new folder is written beside the target (``.NAME.tmp-XXXX``), flushed to disk, then swapped
  in. On Linux the swap is one ``renameat2(RENAME_EXCHANGE)``: at every instant the target is the
  complete old folder or the complete new one. Elsewhere it is two renames, and a crash between
  them leaves the target missing with the complete old copy beside it (``.NAME.old-XXXX``):
  :func:`recover` (run by the next save and by ``load``) puts a complete copy back.
* The next save removes what a crashed save left beside the target.

``check_target`` runs before any training, so a refused or unwritable destination costs nothing.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import shutil
import uuid
from pathlib import Path
from typing import Callable, Iterable

from .errors import ConfigError

MARKER = "transferkit.json"
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _listing(folder: Path, n: int = 5) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    return ", ".join(names[:n]) + (f", ... ({len(names)} entries)" if len(names) > n else "")


def _contains(folder: Path, other: Path) -> bool:
    return other == folder or folder in other.parents


def _data_paths(values: Iterable[object]) -> list[Path]:
    """Training / eval data given as a path (a folder of images, a CSV): the folders that must survive."""
    out = []
    for value in values:
        if isinstance(value, (str, os.PathLike)):
            try:
                path = Path(value).expanduser().resolve()
            except (OSError, ValueError):
                continue
            if path.exists():
                out.append(path)
    return out


def _check_writable(parent: Path) -> None:
    """Create and remove a file where the temporary folder will go: permissions, read-only mounts, full disks."""
    existing = parent
    while not existing.exists():
        existing = existing.parent
    for stale in existing.glob(".transferkit-write-test-*"):  # left by a process killed mid-check
        stale.unlink(missing_ok=True)
    probe = existing / f".transferkit-write-test-{uuid.uuid4().hex[:8]}"
    try:
        probe.write_bytes(b"x")
    except OSError as exc:
        raise ConfigError(f"cannot write into {str(existing)!r} ({exc.strerror or exc}): the model could not be saved "
                          "there. Choose a folder you can write to, or fix its permissions or free space.") from None
    finally:
        probe.unlink(missing_ok=True)


def check_target(path: str | os.PathLike | None, overwrite: bool = False, data: Iterable[object] = (),
                 what: str = "save") -> Path:
    """The resolved destination folder, or a ConfigError saying why it may not be written.

    ``data`` are the user's data arguments; a destination that holds any of them is refused.
    """
    if path is None or not str(path).strip():
        raise ConfigError(f"{what}: the destination folder is {path!r}; give a folder name such as 'out/model'.")
    target = Path(path).expanduser().resolve()
    guarded = {"the working directory": Path.cwd().resolve(), "your home folder": Path.home().resolve()}
    for name, folder in guarded.items():
        if _contains(target, folder):
            raise ConfigError(f"{what}: refusing to write a model to {str(target)!r}: it is or contains {name} "
                              f"({str(folder)!r}). Save into a new sub-folder, e.g. {str(target / 'model')!r}.")
    if target.parent == target:
        raise ConfigError(f"{what}: refusing to write a model to the filesystem root {str(target)!r}; "
                          "give a new sub-folder.")
    for held in _data_paths(data):
        if _contains(target, held):
            raise ConfigError(f"{what}: refusing to write a model to {str(target)!r}: it holds your data "
                              f"{str(held)!r}, which a replace would delete. Choose another folder.")
    if target.exists() and not target.is_dir():
        raise ConfigError(f"{what}: {str(target)!r} is a file, not a folder; transferkit never replaces a file "
                          "with a model folder. Choose another name.")
    if target.is_dir() and any(target.iterdir()):
        if not (target / MARKER).is_file():
            raise ConfigError(f"{what}: {str(target)!r} is not empty and was not written by transferkit (no {MARKER}); "
                              f"it holds {_listing(target)}. Nothing was changed: choose a new or empty folder.")
        if not overwrite:
            raise ConfigError(f"{what}: {str(target)!r} already exists and holds a transferkit model; pass "
                              "overwrite=True to replace it, or choose another folder.")
    _check_writable(target.parent)
    return target


def _siblings(target: Path) -> list[Path]:
    if not target.parent.is_dir():
        return []
    prefixes = (f".{target.name}.tmp-", f".{target.name}.old-")
    return [p for p in target.parent.iterdir() if p.name.startswith(prefixes) and p.is_dir()]


def recover(target: Path) -> bool:
    """If ``target`` is missing but a crashed save left a complete copy beside it, move that copy back."""
    if target.exists():
        return False
    complete = [p for p in _siblings(target) if (p / MARKER).is_file()]
    if not complete:
        return False
    newest = max(complete, key=lambda p: (p / MARKER).stat().st_mtime_ns)
    os.rename(newest, target)
    return True


def _discard(folder: Path) -> None:
    """Delete a stale copy, marker first, so a half-deleted copy is never taken for a complete one."""
    (folder / MARKER).unlink(missing_ok=True)
    shutil.rmtree(folder, ignore_errors=True)


def _fsync_tree(folder: Path) -> None:
    for f in sorted(folder.rglob("*")):
        if f.is_file():
            fd = os.open(f, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2); False where the OS or filesystem cannot."""
    libc_name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(libc_name, use_errno=True) if libc_name else None
    fn = getattr(libc, "renameat2", None)
    if fn is None:
        return False
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def write_folder(target: Path, write: Callable[[Path], None], marker: Callable[[Path], None]) -> Path:
    """Build the folder with ``write`` then ``marker`` (which writes MARKER) beside ``target``; swap it in."""
    recover(target)
    for stale in _siblings(target):
        _discard(stale)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        write(tmp)
        _fsync_tree(tmp)
        marker(tmp)  # last: its presence means the copy is complete
        if target.exists() and any(target.iterdir()):
            if not _exchange(tmp, target):
                old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
                os.rename(target, old)  # from here until the next rename, recover() can restore `old`
                os.rename(tmp, target)
                tmp = old
        else:
            os.rename(tmp, target)  # replaces an empty folder, as rename(2) allows
    finally:
        if tmp.exists():
            _discard(tmp)
    return target
