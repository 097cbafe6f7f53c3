"""``Adapted``: the trained model with its labels, preprocessing and history; and ``load``.

Saving writes the family's own layout (timm ``save_for_hf`` or transformers ``save_pretrained``,
safetensors only) plus ``transferkit.json``, through :mod:`transferkit.storage`: a folder the
user did not get from transferkit is never replaced, and an interrupted save never leaves the
target half-written or missing.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import storage
from .config import RunConfig
from .data import ExampleDataset, make_loader
from .errors import ConfigError, DataError, TransferkitError
from .processes import on_main_process
from .tasks import get_task

CONFIG_NAME = storage.MARKER
logger = logging.getLogger("transferkit")


def _one_image(arr: np.ndarray) -> bool:
    """HxW, HxWxC or CxHxW is one image; (N, H, W) and (N, H, W, C) are stacks."""
    return arr.ndim == 2 or arr.ndim == 3 and (arr.shape[-1] in (1, 3, 4) or arr.shape[0] in (1, 3))


class Adapted:
    """A backbone adapted to a new task. ``model`` is a plain ``torch.nn.Module`` (new head included)."""

    def __init__(self, backbone, config: RunConfig, history: list[dict[str, Any]] | None = None,
                 record: dict[str, Any] | None = None, base: Any = None):
        self.backbone = backbone
        self.config = config
        self.history = list(history or [])
        self.comparison = None  # set by adapt(..., compare=True)
        record = record or {}
        # what the model card reports: held-out evaluations, and a loaded model's comparison and card options
        self.evaluations: list[dict[str, Any]] = list(record.get("evaluations") or [])
        self._saved_comparison = record.get("comparison")
        self._card_options = dict(record.get("card") or {})
        self._task = get_task(config.task)
        self._base_source, self._base = base, None  # what base_model() loads: the module given to adapt(), or None
        # what an extension needs (transferkit.extension): class means and exemplars; the model extended, if any;
        # and where this model was loaded from (its folder or hf-hub id), which an extension records
        self.memory = None
        self.previous: Adapted | None = None
        self.origin: str | None = None

    @property
    def model(self) -> torch.nn.Module:
        return self.backbone.model

    @property
    def labels(self) -> list[str]:
        return list(self.config.labels)

    @property
    def task(self) -> str:
        return self.config.task

    @property
    def threshold(self) -> float | None:
        return self.config.threshold

    def __repr__(self) -> str:
        last = self.history[-1] if self.history else {}
        shown = {k: round(v, 4) for k, v in last.items() if k.startswith("eval_")}
        return (f"Adapted(model={self.config.model!r}, family={self.config.family!r}, task={self.task!r}, "
                f"strategy={self.config.strategy.get('name')!r}, labels={self.labels[:6]}{'...' if len(self.labels) > 6 else ''}, "
                f"last_epoch={shown})")

    # --- inference -------------------------------------------------------------------------------------
    def _examples(self, inputs: Any, require_labels: bool, predicting: bool = False):
        if predicting and (isinstance(inputs, (str, Path)) and not Path(str(inputs)).is_dir()
                           and not str(inputs).lower().endswith((".csv", ".jsonl", ".json"))
                           or type(inputs).__module__.startswith("PIL")
                           or isinstance(inputs, np.ndarray) and _one_image(inputs)):
            inputs = [inputs]  # one input, not a dataset
        if isinstance(inputs, np.ndarray) and inputs.ndim in (3, 4):
            inputs = list(inputs)  # a stack of images, e.g. (N, H, W) digits
        ex = self._task.read(inputs, self.config.input_column, self.config.label_column, require_labels=require_labels)
        if ex.modality != self.backbone.modality:
            raise DataError(f"this model takes {self.backbone.modality} inputs, got {ex.modality} ({type(ex.inputs[0]).__name__}).")
        return ex

    def _outputs(self, inputs, y, modality: str, batch_size: int):
        """The task's outputs on ``inputs`` (and the loader, for a reference model to run on the same batches)."""
        from .training import collect

        loader = make_loader(ExampleDataset(inputs, y, modality), self.backbone.preprocess, self._task,
                             batch_size=batch_size, training=False)
        device = next(self.model.parameters()).device
        return collect(self.backbone.family.logits, self.model, loader, self._task, device=device), loader

    def predict_proba(self, inputs: Any, batch_size: int = 32) -> np.ndarray:
        """Probabilities, shape (n_inputs, n_labels), columns in ``labels`` order (classification)."""
        _check_batch_size(batch_size)
        if not hasattr(self._task, "probabilities"):
            raise ConfigError(f"predict_proba() gives a classifier's class probabilities; this is a {self.task!r} "
                              "model: use predict().")
        ex = self._examples(inputs, require_labels=False, predicting=True)
        (logits, _), _ = self._outputs(ex.inputs, None, ex.modality, batch_size)
        return self._task.probabilities(torch.from_numpy(logits)).numpy()

    def predict(self, inputs: Any, batch_size: int = 32) -> list[Any]:
        """One prediction per input: ``{"label", "score"}``; for multi-label, the labels above the threshold;
        for token classification, the entities of each text (``{"entity_group", "word", "start", "end", "score"}``)."""
        _check_batch_size(batch_size)
        self._task.check_predict()
        ex = self._examples(inputs, require_labels=False, predicting=True)
        outputs, _ = self._outputs(ex.inputs, None, ex.modality, batch_size)
        return self._task.decode(outputs, self.labels, self.threshold, ex.inputs)

    def evaluate(self, dataset: Any, batch_size: int = 32, name: str = "held-out test set") -> dict[str, float]:
        """The task's metrics on a dataset (any form ``adapt`` takes), with its mean ``loss``.

        Classification: accuracy / F1; token classification: entity F1, precision, recall and word
        accuracy; causal LM: perplexity and the unadapted model's ``base_perplexity``. The scores,
        with per-class (per-entity-type) ones, are also kept (``evaluations``) for the model card
        that ``save`` and ``push_to_hub`` write; ``name`` is how the card calls the data.
        """
        _check_batch_size(batch_size)
        task = self._task
        ex = self._examples(dataset, require_labels=task.needs_labels)
        y = task.encode(ex, self.labels, what="eval set")
        inputs, y = task.prepare(ex.inputs, y, self.backbone.preprocess, "eval set", training=False)
        outputs, loader = self._outputs(inputs, y, ex.modality, batch_size)
        metrics = task.score(outputs, self.threshold, self.labels)
        metrics.update(task.reference_scores(self, loader))
        if self.config.resolved.get("extension"):
            from .extension.scores import old_and_new

            metrics.update(old_and_new(self, outputs, loader))
        self.evaluations = self.evaluations[-4:] + [{
            "name": str(name), "split": "test", "n": int(len(inputs)), "metrics": dict(metrics),
            "per_class": task.per_class(outputs, self.labels, self.threshold)}]
        return metrics

    def generate(self, prompt: str | list[str], max_new_tokens: int = 50, **generation_kwargs: Any) -> str | list[str]:
        """Continue ``prompt`` (a causal LM): the new text only, a string per prompt. ``generation_kwargs`` go to
        transformers' ``generate`` (``do_sample=True, top_p=0.9, temperature=0.7``, ...); the default is greedy."""
        single = isinstance(prompt, str)
        prompts = [prompt] if single else list(prompt) if isinstance(prompt, (list, tuple)) else None
        if not prompts or not all(isinstance(p, str) and p for p in prompts):
            raise ConfigError(f"generate() takes a prompt string or a non-empty list of them, got {prompt!r}.")
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be an integer >= 1, got {max_new_tokens!r}.")
        out = self._task.generate(self.backbone, prompts, max_new_tokens, **generation_kwargs)
        return out[0] if single else out

    def base_model(self) -> torch.nn.Module | None:
        """The pretrained model before adaptation, loaded again from its source on first use (a causal LM's
        ``base_perplexity``); None, with a warning, where the source cannot be loaded again."""
        if self._base is None:
            from .backbones import resolve_family

            source = self._base_source if self._base_source is not None else self.config.model
            options = {"max_length": self.config.training.max_length, "tokenizer": self.backbone.preprocess.tokenizer,
                       "augment": False}
            try:
                family, loadable = resolve_family(source)
                built = family.build(loadable, self.labels, self._task, options)
            except TransferkitError as exc:
                logger.warning("base_perplexity left out: the base model %r cannot be loaded again (%s)",
                               _shown(source), str(exc)[:200])
                return None
            self._base = built.model.to(next(self.model.parameters()).device).eval()
        return self._base

    # --- persistence -----------------------------------------------------------------------------
    def record(self, merge_lora: bool = True, license: str | None = None,
               datasets: list[str] | str | None = None) -> dict[str, Any]:
        """What ``transferkit.json`` holds: the run configuration and everything the model card reports."""
        from .hub.card import check_datasets, check_license

        card = dict(self._card_options)
        if license is not None:
            card["license"] = check_license(license)
        if datasets is not None:
            card["datasets"] = check_datasets(datasets)
        config = self.config.to_dict()
        if self.memory is not None:  # what the folder will hold now (exemplars may have been dropped since training)
            config["resolved"]["memory"] = self.memory.describe()
        return config | {"history": self.history, "evaluations": self.evaluations,
                                        "comparison": self._saved_comparison, "card": card,
                                        "saved_as": "merged" if merge_lora or self.backbone.adapter is None
                                        else "peft-adapter"}

    def save(self, path: str | Path, overwrite: bool = False, merge_lora: bool = True, license: str | None = None,
             datasets: list[str] | str | None = None) -> Path:
        """Write the model folder with its model card (rules in :mod:`transferkit.storage`).

        Only a folder transferkit wrote is ever replaced, and only with ``overwrite=True``; the old
        folder stays whole until the new one is complete and swapped in. A LoRA model is saved
        merged (plain timm / transformers open it); ``merge_lora=False`` writes the peft adapter
        instead, which ``PeftModel.from_pretrained(base, folder)`` loads. ``license`` and
        ``datasets`` (Hub dataset ids) go into the card's metadata. Under ``accelerate launch`` or
        ``torchrun`` the main process writes and every process returns when the folder is complete.
        """
        return on_main_process(lambda: self._save(path, overwrite, merge_lora, license, datasets))

    def _save(self, path: str | Path, overwrite: bool = False, merge_lora: bool = True, license: str | None = None,
              datasets: list[str] | str | None = None) -> Path:
        target = storage.check_target(path, overwrite=overwrite)
        payload = self.record(merge_lora, license, datasets)
        _check_merge_option(merge_lora, self)

        def write(folder: Path) -> None:
            from .hub.card import comparison_record, render, write_images
            from .hub.formats import write_model

            write_model(self.backbone, folder, self.labels, merge_lora=merge_lora)
            if self.memory is not None:
                self.memory.write(folder, self.labels)
            if hasattr(self.comparison, "card_record"):  # an extension's four arms (extension.compare)
                payload["comparison"] = self.comparison.card_record()
            elif self.comparison is not None:
                payload["comparison"] = comparison_record(self.comparison, write_images(self.comparison, folder))
            (folder / "README.md").write_text(str(render(payload)))

        def marker(folder: Path) -> None:
            (folder / CONFIG_NAME).write_text(json.dumps(payload, indent=2))
            _readable(folder)

        try:
            return storage.write_folder(target, write, marker)
        except OSError as exc:
            kept = " The previous model there is unchanged." if target.exists() else ""
            raise TransferkitError(f"could not save to {str(target)!r} ({exc.strerror or exc}).{kept} "
                                   "Free some space or choose another folder.") from None

    def push_to_hub(self, repo_id: str, private: bool | None = None, token: str | None = None,
                    commit_message: str | None = None, revision: str | None = None, merge_lora: bool = True,
                    license: str | None = None, datasets: list[str] | str | None = None) -> str:
        """Save to a temporary folder and upload it to the Hugging Face Hub in one commit; return its URL.

        The token comes from ``token=``, ``HF_TOKEN`` or ``hf auth login``, and is never written
        anywhere. The model card is rendered for ``repo_id``. See :mod:`transferkit.hub.upload`.
        Under several processes call it on every process: the main one uploads, all return its URL.
        """
        import tempfile

        from .hub import check_repo_id, push_to_hub

        check_repo_id(repo_id)  # a bad name fails before anything is written
        if self.memory is not None and self.memory.exemplars:
            logger.warning("the upload includes %d training examples kept with keep_exemplars= (exemplars/): they are "
                           "part of your training data. To leave them out: result.memory.exemplars = []",
                           len(self.memory.exemplars))

        def push() -> str:
            with tempfile.TemporaryDirectory(prefix="transferkit-push-") as tmp:
                folder = self._save(Path(tmp) / "model", merge_lora=merge_lora, license=license, datasets=datasets)
                return push_to_hub(folder, repo_id, private=private, token=token, commit_message=commit_message,
                                   revision=revision)

        return on_main_process(push)


def _check_merge_option(merge_lora: Any, adapted: "Adapted") -> None:
    if not isinstance(merge_lora, bool):
        raise ConfigError(f"merge_lora must be True or False, got {merge_lora!r}.")
    if not merge_lora and adapted.backbone.adapter is None:
        name = adapted.config.strategy.get("name")
        why = ("it was loaded from a merged folder, so its adapter is not kept apart any more" if name == "lora"
               else f"this model was adapted with {name!r}, not 'lora'")
        raise ConfigError(f"merge_lora=False keeps a LoRA adapter apart from its base, but {why}. Drop merge_lora.")


def _shown(source: Any) -> str:
    return type(source).__name__ if isinstance(source, torch.nn.Module) else str(source)


def _check_batch_size(batch_size: Any) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be an integer >= 1, got {batch_size!r}.")


def _check_labels(config: RunConfig, backbone, folder: Path) -> None:
    """transferkit.json's labels must fit the weights: one per output, in the order the model's own config gives."""
    labels = config.labels
    if labels == [] and not get_task(config.task).min_labels:  # a causal LM: no labels, its LM head kept
        return
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise TransferkitError(f"{str(folder / CONFIG_NAME)!r}: 'labels' must be a list of names, got {labels!r}. "
                               "The file was edited or damaged: save the model again.")
    params = dict(backbone.model.named_parameters())
    head = [params[n] for n in backbone.head if n in params and params[n].ndim >= 1]
    outputs = max((p.shape[0] for p in head if p.ndim == 2), default=head[0].shape[0] if head else len(labels))
    if outputs != len(labels):
        raise TransferkitError(f"{str(folder / CONFIG_NAME)!r} lists {len(labels)} labels but the model's head has "
                               f"{outputs} outputs. The file does not belong to these weights: save the model again.")
    own = folder / "config.json"
    own_labels = _own_labels(json.loads(own.read_text())) if own.is_file() else None
    if own_labels is not None and own_labels != labels:
        raise TransferkitError(f"the labels in {CONFIG_NAME} {labels[:6]} disagree with those in config.json "
                               f"{own_labels[:6]} (same names, other order, or other names): the ids would be read "
                               "as the wrong classes. Save the model again.")


def _own_labels(config: dict) -> list[str] | None:
    """Label names in id order from a transformers (id2label) or timm (label_names) config.json, if any."""
    if isinstance(config.get("label_names"), list):
        return [str(x) for x in config["label_names"]]
    id2label = config.get("id2label")
    if isinstance(id2label, dict) and id2label:
        try:
            return [str(id2label[k]) for k in sorted(id2label, key=int)]
        except ValueError:
            return None
    return None


def _readable(folder: Path) -> None:
    """Give every file the permissions the user's umask asks for (safetensors writes 0600 files)."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for f in folder.rglob("*"):
        f.chmod((0o777 if f.is_dir() else 0o666) & ~umask)


def load(path: str | Path, revision: str | None = None, token: str | None = None) -> Adapted:
    """Restore a folder written by ``Adapted.save`` (or ``adapt(..., output_dir=...)``), or a Hub repository
    pushed by transferkit: ``load("hf-hub:owner/name", revision=...)``."""
    from .backbones import get_family
    from .hub import HUB_PREFIX, download

    if path is None or not str(path).strip():
        raise TransferkitError(f"load() needs the folder a model was saved to, got {path!r}.")
    if str(path).startswith(HUB_PREFIX):
        folder = download(str(path), revision=revision, token=token)
    elif revision is not None:
        raise ConfigError(f"revision={revision!r} applies to Hub repositories ('hf-hub:owner/name'), not to the "
                          f"folder {str(path)!r}. Drop revision.")
    else:
        folder = _local_folder(path)
    data, config = _read_record(folder)
    options = {"source": config.model, "max_length": config.training.max_length, "augment": False}
    try:
        if data.get("saved_as") == "peft-adapter":
            from .hub.formats import load_adapter

            backbone = load_adapter(folder, config, options)
        else:
            backbone = get_family(config.family).load(folder.resolve(), options, get_task(config.task))
    except TransferkitError:
        raise
    except Exception as exc:  # safetensors, json, torch, timm, transformers: all mean a damaged or partial folder
        detail = str(exc).splitlines()[0][:200] if str(exc) else ""
        raise TransferkitError(f"cannot load the {config.family} model in {str(folder)!r} "
                               f"({type(exc).__name__}: {detail}). Is the folder complete? A file such as "
                               "model.safetensors may be truncated or missing: save the model again.") from None
    _check_labels(config, backbone, folder)
    from .extension.memory import Memory

    adapted = Adapted(backbone, config, data.get("history"), record=data)
    adapted.memory = Memory.read(folder)
    adapted.origin = str(path) if str(path).startswith(HUB_PREFIX) else str(folder.resolve())
    return adapted


def _local_folder(path: str | Path) -> Path:
    folder = Path(path).expanduser()
    if storage.recover(folder.resolve()):
        logger.warning("%s was missing after an interrupted save; restored the complete copy left beside it", folder)
    if not folder.exists():
        raise TransferkitError(f"no such folder: {str(folder)!r} (resolved from {Path.cwd()}).")
    return folder


def _read_record(folder: Path) -> tuple[dict[str, Any], RunConfig]:
    cfg_file = folder / CONFIG_NAME
    if not cfg_file.is_file():
        hint = " It looks like a plain model folder: adapt() it instead." if (folder / "config.json").is_file() else ""
        raise TransferkitError(f"{str(folder)!r} is not a transferkit model folder (no {CONFIG_NAME}).{hint}")
    try:
        data = json.loads(cfg_file.read_text())
        return data, RunConfig.from_dict(data)
    except (ValueError, TypeError, KeyError) as exc:
        raise TransferkitError(f"{str(cfg_file)!r} cannot be read ({type(exc).__name__}: {exc}); was it written by a "
                               f"different transferkit version? This is {__import__('transferkit').__version__}.") from None
