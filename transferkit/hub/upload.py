"""Upload a saved model folder to the Hugging Face Hub in one commit, and bring one back.

Everything goes through ``huggingface_hub``'s ``HfApi``: ``create_repo(exist_ok=True)`` then one
``create_commit`` of the folder's files (what ``upload_folder`` does), which uploads nothing for
files the repository already holds with the same content (the client compares hashes first). The token is read where the Hub's
own tools read it (``token=``, ``HF_TOKEN``, the ``hf auth login`` store); transferkit never
writes it anywhere and never puts it in a message.

The Hub's refusals come back as typed ``huggingface_hub`` errors; each is turned into a
:class:`TransferkitError` that says what to do (log in, pick a name in your own namespace, ...).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..errors import TransferkitError
from ..storage import MARKER

logger = logging.getLogger("transferkit")

HUB_PREFIX = "hf-hub:"
LOGIN_HELP = ("Log in once with `hf auth login` (or set the HF_TOKEN environment variable, or pass token=...) "
              "using a token with write access from https://huggingface.co/settings/tokens.")


def check_repo_id(repo_id: Any) -> str:
    """``owner/name`` (the ``hf-hub:`` prefix is accepted) or a TransferkitError showing the form."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    text = str(repo_id or "").strip()
    text = text[len(HUB_PREFIX):] if text.startswith(HUB_PREFIX) else text
    try:
        validate_repo_id(text)
    except HFValidationError as exc:
        raise TransferkitError(f"{repo_id!r} is not a Hub repository name ({str(exc).splitlines()[0][:160]}). "
                               "Use 'your-name/model-name': letters, digits, '-', '_' and '.'.") from None
    if text.count("/") != 1:
        raise TransferkitError(f"{repo_id!r} has no owner: name the repository as 'your-name/{text}' (or "
                               f"'an-org/{text}'), so it is clear where it goes.")
    return text


def check_token(token: str | None) -> str:
    from huggingface_hub import get_token

    found = token or get_token()
    if not found:
        raise TransferkitError(f"no Hugging Face token found, so nothing can be uploaded. {LOGIN_HELP}")
    return found


def _whoami(api, token: str) -> str | None:
    try:
        return api.whoami(token=token).get("name")
    except Exception:  # only used to word an error; the original error is the one that matters
        return None


def _explain(exc: Exception, api, token: str, repo_id: str) -> TransferkitError:
    """The Hub's refusal as a TransferkitError with the fix; never repeats the token."""
    from huggingface_hub.errors import HfHubHTTPError, RevisionNotFoundError

    status = getattr(getattr(exc, "response", None), "status_code", None)
    reason = getattr(exc, "server_message", None) or (str(exc).splitlines() or [""])[0]
    if status == 401:
        return TransferkitError(f"the Hugging Face Hub refused the token (401 Unauthorized) while uploading to "
                                f"{repo_id!r}: it is invalid or expired. {LOGIN_HELP}")
    if status == 403:
        user = _whoami(api, token)
        owner, name = repo_id.split("/", 1)
        mine = f" Push to '{user}/{name}' instead, or" if user and user != owner else ""
        return TransferkitError(f"you may not write to {repo_id!r} (403 Forbidden): the name belongs to another owner "
                                f"or your token is read-only.{mine} ask the owner for write access, or log in with "
                                f"a write token. {LOGIN_HELP}")
    if isinstance(exc, RevisionNotFoundError):
        return TransferkitError(f"{repo_id!r} has no revision as asked ({str(exc).splitlines()[0][:160]}). "
                                "Give an existing branch, or leave revision=None for 'main'.")
    if isinstance(exc, HfHubHTTPError):
        return TransferkitError(f"the Hub refused the upload to {repo_id!r} (HTTP {status}): {reason[:300]}")
    return TransferkitError(f"could not reach the Hugging Face Hub to upload {repo_id!r} ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0][:200]}). Check the network connection and try again.")


def check_folder(folder: str | Path) -> Path:
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise TransferkitError(f"no such folder: {str(folder)!r}. Pass the folder a model was saved to "
                               "(result.save(folder) or adapt(..., output_dir=folder)).")
    if not (path / MARKER).is_file():
        raise TransferkitError(f"{str(path)!r} is not a transferkit model folder (no {MARKER}); push_to_hub uploads "
                               "folders written by result.save(...). For any other folder use HfApi().upload_folder.")
    return path


def _operations(folder: Path, generated: dict[str, bytes], remote: list[str]) -> list:
    """The commit: every file of the folder (hidden files and caches left out), the ``generated`` files
    given as bytes in place of the folder's own, and the deletion of every other file the revision holds.

    This is what ``upload_folder(delete_patterns="*")`` builds; building it here lets the card and the
    run record be written for the repository without rewriting the user's folder. Without the
    deletions, a model pushed merged and then as an adapter (or the reverse) would leave both sets of
    weights in the repository, and plain libraries would load the stale one. The client still hashes
    every file first and uploads none the repository holds unchanged.
    """
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and not any(
        part.startswith(".") or part == "__pycache__" for part in p.relative_to(folder).parts))
    ops = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(folder / name))
           for name in files if name not in generated]
    ops += [CommitOperationAdd(path_in_repo=name, path_or_fileobj=data) for name, data in generated.items()]
    kept = set(files) | set(generated) | {".gitattributes"}
    return ops + [CommitOperationDelete(path_in_repo=name) for name in remote if name not in kept]


def upload(folder: str | Path, repo_id: str, *, private: bool | None = None, token: str | None = None,
           commit_message: str | None = None, revision: str | None = None,
           generated: dict[str, bytes] | None = None) -> str:
    """Make the revision of ``repo_id`` hold exactly ``folder`` (``generated`` files in place of the folder's own),
    in one commit; return the commit's URL.

    ``private=None`` leaves the visibility to the Hub (your organisation's default, or public);
    ``private=True`` on a repository that exists and is public is refused, never silently ignored.
    """
    from huggingface_hub import HfApi

    path = check_folder(folder)
    repo_id = check_repo_id(repo_id)
    token = check_token(token)
    api = HfApi(token=token, library_name="transferkit", library_version=_version())
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        if private and not api.repo_info(repo_id).private:
            raise TransferkitError(f"{repo_id!r} already exists and is public; private=True cannot change that. Make "
                                   f"it private in its settings on the Hub, or push to a new name.")
        if revision not in (None, "main"):
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        remote = api.list_repo_files(repo_id, revision=revision)
        info = api.create_commit(repo_id=repo_id, operations=_operations(path, generated or {}, remote),
                                 revision=revision,
                                 commit_message=commit_message or f"Upload model trained with transferkit {_version()}")
    except TransferkitError:
        raise
    except OSError as exc:
        if type(exc).__module__.startswith(("huggingface_hub", "httpx", "requests")):
            raise _explain(exc, api, token, repo_id) from None
        raise TransferkitError(f"could not read {exc.filename or str(path)!r} while uploading ({exc.strerror or exc}); "
                               "the saved folder changed or is unreadable: save the model again.") from None
    except Exception as exc:
        raise _explain(exc, api, token, repo_id) from None
    url = getattr(info, "commit_url", None) or str(info)
    logger.info("pushed %s to %s", path, url)
    return url


def download(repo_id: str, revision: str | None = None, token: str | None = None) -> Path:
    """The local snapshot of a Hub repository (downloaded once, then read from the cache)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (GatedRepoError, LocalEntryNotFoundError, RepositoryNotFoundError,
                                        RevisionNotFoundError)

    repo_id = check_repo_id(repo_id)
    try:
        return Path(snapshot_download(repo_id, revision=revision, token=token, library_name="transferkit",
                                      library_version=_version()))
    except RevisionNotFoundError:
        raise TransferkitError(f"{repo_id!r} has no revision {revision!r}: give a branch, tag or commit it has, "
                               "or leave revision=None for 'main'.") from None
    except GatedRepoError:
        raise TransferkitError(f"{repo_id!r} is gated: accept its terms on the Hub, then log in. {LOGIN_HELP}") from None
    except RepositoryNotFoundError:
        raise TransferkitError(f"no model {repo_id!r} on the Hub, or it is private and you are not logged in as its "
                               f"owner. Check the name. {LOGIN_HELP}") from None
    except LocalEntryNotFoundError:
        raise TransferkitError(f"cannot download {repo_id!r}: offline (HF_HUB_OFFLINE is set or the Hub is "
                               "unreachable) and it is not in the local cache. Connect once, or load the folder "
                               "it was saved to.") from None


def _version() -> str:
    from .. import __version__

    return __version__
