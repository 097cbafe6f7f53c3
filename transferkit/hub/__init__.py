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


def push_to_hub(folder: str | Path, repo_id: str, *, private: bool = False, token: str | None = None,
                commit_message: str | None = None, revision: str | None = None, license: str | None = None,
                datasets: list[str] | str | None = None) -> str:
    """Upload a folder written by ``result.save(...)`` to the Hub in one commit; return the commit URL.

    The model card (README.md) is rendered from the folder's record for ``repo_id``; ``license``
    and ``datasets`` (Hub dataset ids) add to what the record already says.
    """
    from .card import check_datasets, render

    path = check_folder(folder)
    repo_id = check_repo_id(repo_id)
    record = json.loads((path / MARKER).read_text())
    card = render(record, repo_id, license=license, datasets=check_datasets(datasets))
    return upload(path, repo_id, private=private, token=token, commit_message=commit_message, revision=revision,
                  readme=str(card))


__all__ = ["HUB_PREFIX", "check_repo_id", "check_token", "download", "push_to_hub", "upload"]
