"""Sharing: the model card, Hub uploads and downloads.

``push_to_hub(folder, repo_id)`` uploads a folder saved earlier (``Adapted.push_to_hub`` saves
then calls it); ``load("hf-hub:owner/name")`` goes through :func:`upload.download`. The card is
rendered from the folder's ``transferkit.json`` at push time, so it names the repository it is in.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..storage import MARKER
from .upload import HUB_PREFIX, check_folder, check_repo_id, check_token, download, upload


def push_to_hub(folder: str | Path, repo_id: str, *, private: bool | None = None, token: str | None = None,
                commit_message: str | None = None, revision: str | None = None, license: str | None = None,
                datasets: list[str] | str | None = None) -> str:
    """Upload a folder written by ``result.save(...)`` to the Hub in one commit; return the commit URL.

    The repository's revision then holds exactly the folder (files it held before and the folder
    lacks are deleted). Two files are written for the repository rather than copied: the model card
    (README.md), rendered for ``repo_id`` with ``license`` and ``datasets`` (Hub dataset ids) added,
    and ``transferkit.json`` with local paths cut to their last component, so nothing of the
    user's file system goes public. The folder itself is left as it is. Under several processes,
    call it on every process: the main one uploads.
    """
    from ..processes import on_main_process
    from .card import check_datasets, check_license, render

    path = check_folder(folder)
    repo_id = check_repo_id(repo_id)
    record = public_record(read_record(path))
    card = render(record, repo_id, license=check_license(license), datasets=check_datasets(datasets),
                  revision=revision)
    generated = {"README.md": str(card).encode(), MARKER: (json.dumps(record, indent=2) + "\n").encode()}
    return on_main_process(lambda: upload(path, repo_id, private=private, token=token, commit_message=commit_message,
                                          revision=revision, generated=generated))


def read_record(folder: Path) -> dict:
    from ..errors import TransferkitError

    try:
        return json.loads((folder / MARKER).read_text())
    except (OSError, ValueError) as exc:
        raise TransferkitError(f"{str(folder / MARKER)!r} cannot be read ({type(exc).__name__}: {exc}): the folder "
                               "is damaged. Save the model again.") from None


def public_record(record: dict) -> dict:
    """The run record with every local path cut to its last component; an adapter must name a Hub base."""
    from ..errors import TransferkitError
    from .card import base_model_id, is_local_path

    def scrub(value):
        if isinstance(value, dict):
            return {k: scrub(v) for k, v in value.items()}
        if isinstance(value, list):
            return [scrub(v) for v in value]
        return Path(value).name if isinstance(value, str) and is_local_path(value) else value

    base = base_model_id(record["model"], record.get("resolved") or {})
    if record.get("saved_as") == "peft-adapter" and base is None:
        raise TransferkitError(f"this folder is a LoRA adapter on {record['model']!r}, which is not on the Hub, so "
                               "nobody could load it from there. Push it merged: save(..., merge_lora=True) "
                               "(the default), then push that folder.")
    public = scrub(record)
    if is_local_path(record["model"]):
        public["model"] = base or Path(record["model"]).name
    return public


__all__ = ["HUB_PREFIX", "check_repo_id", "check_token", "download", "push_to_hub", "upload"]
