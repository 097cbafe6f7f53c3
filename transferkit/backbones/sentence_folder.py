"""The sentence-transformers folder layout: read a model's pooling from it, write a classifier into it.

A sentence-transformers folder is a transformers folder (root ``config.json``, weights, tokenizer)
plus ``modules.json``, the ordered pipeline of modules, each with its own sub-folder. Reading:
the ``Pooling`` module's ``config.json`` (the legacy ``pooling_mode_*_tokens`` booleans or the
newer ``pooling_mode`` key) and whether ``Normalize`` follows it. Writing: Transformer (root),
Pooling (``1_Pooling``), Normalize (``2_Normalize``) when used, then the head as a ``Dense`` module
with an identity activation, so ``SentenceTransformer(folder).encode(texts)`` returns the logits.

Formats written are the ones every sentence-transformers release since 2.3 reads (module types
``sentence_transformers.models.*``, legacy pooling keys, ``Dense`` config ``in_features`` /
``out_features`` / ``bias`` / ``activation_function`` with ``linear.weight`` / ``linear.bias`` in
``model.safetensors``), checked against sentence-transformers 6.2's own loader and saver.
"""
from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from ..errors import ModelNotFoundError
from .pooling import Pooling

logger = logging.getLogger("transferkit")

MODULE_TYPES = {kind: f"sentence_transformers.models.{kind}" for kind in ("Transformer", "Pooling", "Normalize", "Dense")}
# sentence-transformers' legacy keys, in the order it concatenates the modes they switch on
LEGACY_MODE_KEYS = {
    "pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max", "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
CLASSIC_KEYS = list(LEGACY_MODE_KEYS)[:4]  # the four every release accepts; the newer two only when used
IDENTITY = "torch.nn.modules.linear.Identity"  # sentence_transformers.util.fullname(nn.Identity())


def find_file(source: str, filename: str) -> Path | None:
    """``filename`` inside a local folder or a Hub repository, or None when it has none."""
    local = Path(source)
    if local.is_dir():
        path = local / filename
        return path if path.is_file() else None
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(source, filename))
    except Exception:  # missing file, offline, gated, unknown repo: all mean "no such file to read"
        return None


def read_modules(source: str) -> list[dict[str, Any]] | None:
    path = find_file(source, "modules.json")
    return json.loads(path.read_text()) if path else None


def _kind(entry: dict[str, Any]) -> str:
    return str(entry.get("type", "")).rsplit(".", 1)[-1]


def pooling_modes(config: dict[str, Any]) -> tuple[str, ...]:
    """The modes a Pooling ``config.json`` switches on, in the order sentence-transformers concatenates them."""
    if "pooling_mode" in config:  # sentence-transformers >= 5 writes the modes by name
        mode = config["pooling_mode"]
        return (mode,) if isinstance(mode, str) else tuple(mode)
    return tuple(mode for key, mode in LEGACY_MODE_KEYS.items() if config.get(key)) or ("mean",)


def read_pooling(source: str) -> Pooling | None:
    """The pooling a sentence-transformers folder (or Hub repo) declares; None if it declares none."""
    modules = read_modules(source)
    pooling = _declared_pooling(source, modules or [])
    if pooling is not None and pooling.ignored:
        logger.info("%s: the features are the output of Pooling%s; modules %s are not part of them",
                    source, "+Normalize" if pooling.normalize else "", list(pooling.ignored))
    if pooling is not None and _lowercases(source):
        logger.warning("%s: sentence_bert_config.json asks to lowercase texts; transferkit feeds them to the "
                       "tokenizer as they are", source)
    return pooling


def _declared_pooling(source: str, modules: list[dict[str, Any]]) -> Pooling | None:
    kinds = [_kind(m) for m in modules]
    if "Pooling" not in kinds:
        return None
    at = kinds.index("Pooling")
    where = f"{modules[at].get('path') or ''}/config.json".lstrip("/")
    path = find_file(source, where)
    if path is None:
        raise ModelNotFoundError(f"{source!r} lists a Pooling module in modules.json but has no {where}; "
                                 "the download is incomplete: fetch the folder again.")
    normalize = kinds[at + 1:at + 2] == ["Normalize"]
    # features stop after Pooling [+ Normalize]: later modules (a Dense projection, a previous head) are replaced
    ignored = tuple(k for k in kinds[:at] if k != "Transformer") + tuple(kinds[at + 1 + normalize:])
    return Pooling(pooling_modes(json.loads(path.read_text())), normalize, origin=f"from {where}", ignored=ignored)


def _lowercases(source: str) -> bool:
    path = find_file(source, "sentence_bert_config.json")
    return bool(path and json.loads(path.read_text()).get("do_lower_case"))


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")


def pooling_config(pooling: Pooling, hidden_size: int) -> dict[str, Any]:
    """A Pooling ``config.json``: legacy keys when their fixed order is ours, else the newer named modes."""
    legacy_order = [m for m in LEGACY_MODE_KEYS.values() if m in pooling.modes]
    if legacy_order != list(pooling.modes) or len(set(pooling.modes)) != len(pooling.modes):
        return {"embedding_dimension": hidden_size, "pooling_mode": list(pooling.modes)}
    config: dict[str, Any] = {"word_embedding_dimension": hidden_size}
    config.update({key: mode in pooling.modes for key, mode in LEGACY_MODE_KEYS.items()
                   if key in CLASSIC_KEYS or mode in pooling.modes})
    return config


def write(directory: Path, model, tokenizer, max_length: int) -> str:
    """Write ``model`` (a PooledTextClassifier) and its tokenizer as a sentence-transformers folder.

    Returns the head's weights file, relative to ``directory``.
    """
    write_body(directory, model)
    tokenizer.save_pretrained(str(directory))
    head = write_pipeline(directory, model.pooling, int(model.config.hidden_size), max_length, head=model.classifier)
    _write_json(directory / "config_sentence_transformers.json",
                {"model_type": "SentenceTransformer", "prompts": {}, "default_prompt_name": None,
                 "__version__": {"transformers": _version("transformers"), "pytorch": torch.__version__}})
    return head


def write_body(directory: Path, model) -> None:
    """The transformers body, with the pooler weights it runs without (see pooling.detach_unused_pooler)."""
    from ._quiet import quiet_transformers

    with quiet_transformers():
        model.body.save_pretrained(str(directory), state_dict={**model.body.state_dict(), **model.spare_weights})


def write_pipeline(directory: Path, pooling: Pooling, hidden_size: int, max_length: int | None = None,
                   head: torch.nn.Linear | None = None) -> str | None:
    """``modules.json`` and the module folders: Transformer, Pooling, [Normalize], [the head as Dense].

    Returns the head's weights file relative to ``directory`` (None without a head).
    """
    from safetensors.torch import save_file

    modules = [("", "Transformer"), ("1_Pooling", "Pooling")]
    if max_length is not None:
        _write_json(directory / "sentence_bert_config.json", {"max_seq_length": int(max_length), "do_lower_case": False})
    _write_json(directory / "1_Pooling" / "config.json", pooling_config(pooling, hidden_size))
    if pooling.normalize:
        modules.append(("2_Normalize", "Normalize"))
        _write_json(directory / "2_Normalize" / "config.json", {})
    if head is not None:
        dense = directory / f"{len(modules)}_Dense"
        modules.append((dense.name, "Dense"))
        _write_json(dense / "config.json", {"in_features": head.in_features, "out_features": head.out_features,
                                            "bias": head.bias is not None, "activation_function": IDENTITY})
        weights = {"linear.weight": head.weight, **({"linear.bias": head.bias} if head.bias is not None else {})}
        save_file({k: v.detach().cpu().contiguous() for k, v in weights.items()}, str(dense / "model.safetensors"))
    _write_json(directory / "modules.json", [{"idx": i, "name": str(i), "path": path, "type": MODULE_TYPES[kind]}
                                             for i, (path, kind) in enumerate(modules)])
    return f"{modules[-1][0]}/model.safetensors" if head is not None else None


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def read_head(directory: Path) -> tuple[Pooling, dict[str, torch.Tensor]] | None:
    """The pooling and head weights of a folder written by :func:`write`; None for any other folder.

    A transferkit classifier folder ends its pipeline with a Dense module of identity activation
    after Pooling [+ Normalize]; folders saved by transferkit 0.x have no modules.json at all.
    """
    from safetensors.torch import load_file

    modules = read_modules(str(directory))
    kinds = [_kind(m) for m in modules or []]
    if not kinds or kinds[-1] != "Dense" or kinds[:2] != ["Transformer", "Pooling"]:
        return None
    dense = directory / modules[-1]["path"]
    config = json.loads((dense / "config.json").read_text())
    if config.get("activation_function") != IDENTITY:
        return None
    pooling = _declared_pooling(str(directory), modules)
    pooling = replace(pooling, ignored=pooling.ignored[:-1])  # the Dense is the head itself
    weights = load_file(str(dense / "model.safetensors"))
    return pooling, {k.split(".", 1)[1]: v for k, v in weights.items() if k.startswith("linear.")}
