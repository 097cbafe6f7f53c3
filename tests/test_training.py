"""The training loop and the strategies' mechanics: reproducibility, precision, accumulation,
early stopping, LoRA merge fidelity, the auto rules, and frozen modules in eval mode."""
import numpy as np
import pytest
import torch
from accelerate.utils import set_seed

from conftest import toy_data
from transferkit import Contrastive, Freeze, Full, LinearProbe, LoRA, TransferkitError, adapt
from transferkit.config import TrainingConfig
from transferkit.errors import StrategyError
from transferkit.backbones import resolve_backbone
from transferkit.strategies import Auto, Freeze, frozen_modules, set_train_mode

QUICK = dict(epochs=2, batch_size=8, progress_bar=False)


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("kind", ["cnn", "bert"])
def test_same_seed_same_weights(kind, tiny_models):
    data = toy_data(kind, "single_label")
    a = adapt(tiny_models[kind], data, strategy="full", seed=3, **QUICK)
    b = adapt(tiny_models[kind], data, strategy="full", seed=3, **QUICK)
    c = adapt(tiny_models[kind], data, strategy="full", seed=4, **QUICK)
    wa, wb, wc = _weights(a.model), _weights(b.model), _weights(c.model)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert a.history == [dict(h, seconds=h2["seconds"]) for h, h2 in zip(b.history, a.history)]
    assert any(not torch.equal(wa[k], wc[k]) for k in wa)


def test_bf16_mixed_precision_on_cpu(tiny_models):
    result = adapt(tiny_models["bert"], toy_data("bert", "single_label"), strategy="lora", mixed_precision="bf16", **QUICK)
    assert result.config.training.mixed_precision == "bf16"
    assert np.isfinite(result.predict_proba(["good great movie"])).all()


def test_fp16_without_gpu_is_a_clear_error(tiny_models):
    if torch.cuda.is_available():
        pytest.skip("fp16 is valid on a GPU")
    with pytest.raises(Exception, match="fp16.*GPU.*bf16"):
        adapt(tiny_models["bert"], toy_data("bert", "single_label"), mixed_precision="fp16", **QUICK)


def test_gradient_accumulation_runs_and_is_recorded(tiny_models):
    result = adapt(tiny_models["cnn"], toy_data("cnn", "single_label"), strategy="freeze",
                   gradient_accumulation_steps=2, **QUICK)
    assert result.config.training.gradient_accumulation_steps == 2
    assert len(result.history) == 2


def test_early_stopping_stops_and_restores_best(tiny_models):
    # learning_rate tiny and a random head: no epoch improves on the first, so patience 1 stops after epoch 2
    data = toy_data("cnn", "single_label")
    result = adapt(tiny_models["cnn"], data, eval_dataset=toy_data("cnn", "single_label", n_per_class=10, seed=1),
                   strategy="freeze", epochs=6, learning_rate=1e-9, early_stopping_patience=1, head_init="random",
                   batch_size=8, progress_bar=False)
    assert len(result.history) < 6
    assert result.config.resolved["best_epoch"] is not None
    assert result.config.resolved["schedule"]["early_stopping"] is True


@pytest.mark.parametrize("given", [True, False], ids=["eval_dataset", "carved"])
def test_no_early_stopping_or_restore_on_a_small_validation_split(given, tiny_models):
    """Fewer than 10 validation examples of a class: every epoch runs and the last weights are kept."""
    data = toy_data("cnn", "single_label", n_per_class=12)
    extra = dict(eval_dataset=toy_data("cnn", "single_label", n_per_class=2, seed=1)) if given else {}
    result = adapt(tiny_models["cnn"], data, strategy="freeze", epochs=4, learning_rate=1e-9, head_init="random",
                   early_stopping_patience=1, batch_size=8, progress_bar=False, **extra)
    assert len(result.history) == 4 and result.config.resolved["best_epoch"] is None
    assert "no early stopping or best-epoch restore" in result.config.resolved["schedule"]["reason"]
    assert result.config.resolved["n_train"] == 36 and result.config.resolved["n_validation"] == (6 if given else 0)
    assert ("eval_accuracy" in result.history[-1]) == given  # a given split is still reported


def test_explicit_epochs_and_max_steps_are_obeyed_and_recorded(tiny_models):
    data = toy_data("bert", "single_label")  # 16 examples: 2 steps per epoch at batch 8
    by_epochs = adapt(tiny_models["bert"], data, strategy="full", epochs=3, batch_size=8, progress_bar=False)
    assert len(by_epochs.history) == 3 and by_epochs.config.training.epochs == 3
    by_steps = adapt(tiny_models["bert"], data, strategy="full", max_steps=5, batch_size=8, progress_bar=False)
    assert by_steps.history[-1]["step"] == 5 and by_steps.config.resolved["schedule"]["steps"] == 5
    budget = adapt(tiny_models["bert"], data, strategy="full", batch_size=8, progress_bar=False)
    schedule = budget.config.resolved["schedule"]
    assert budget.config.training.epochs is None and schedule["epochs"] == len(budget.history) == 50
    assert "at least 5 epochs and 200 steps" in schedule["reason"]


def test_every_learning_rate_is_recorded(tiny_models):
    result = adapt(tiny_models["bert"], toy_data("bert", "single_label"), strategy=Full(), learning_rate=1e-3, **QUICK)
    rates = result.config.resolved["learning_rates"]
    assert rates["head"] == pytest.approx(1e-3)
    ordered = [rates[g] for g in result.config.resolved["layer_groups"]]
    assert ordered == sorted(ordered), "rates must shrink toward the input"
    assert ordered[0] == pytest.approx(1e-5) and ordered[-1] == pytest.approx(1e-4)


def _backbone(folder, labels=("a", "b", "c")):
    set_seed(0)
    return resolve_backbone(folder, list(labels), "single_label", {})


@pytest.mark.parametrize("kind", ["cnn", "vit", "bert", "gpt2"])
def test_lora_merge_keeps_predictions(kind, tiny_models):
    """peft#1836: merging must not change outputs; the head must survive the merge."""
    backbone = _backbone(tiny_models[kind])
    LoRA(rank=4).apply(backbone, 1e-3)
    with torch.no_grad():
        for name, p in backbone.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)  # non-zero adapters, as after training
    data = toy_data(kind, "single_label")[:4]
    batch = backbone.preprocess([x for x, _ in data])
    backbone.model.eval()
    with torch.no_grad():
        before = backbone.logits(batch)
        LoRA().finalize(backbone)
        after = backbone.logits(batch)
    assert not any("lora" in n for n, _ in backbone.model.named_parameters())
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-4)


def test_lora_groups_and_targets(tmp_path):
    from transferkit import testing

    backbone = _backbone(str(testing.tiny_bert(tmp_path / "bert4", layers=4)))  # 5 groups: embeddings, 4 layers
    upper = LoRA(groups="upper").target_layers(backbone)
    lower = LoRA(groups="lower").target_layers(backbone)
    assert upper and lower and not set(upper) & set(lower)
    qv = LoRA(target_modules=["query", "value"]).target_layers(backbone)
    assert qv and all(n.endswith((".query", ".value")) for n in qv)


class _Probe:  # a measured probe, as training.probe.ProbeFit reports it
    def __init__(self, score):
        self.cv_score, self.metric, self.folds, self.C = score, "accuracy", 5, 1.0


@pytest.mark.parametrize("modality,task,per_class,score,expected", [
    ("image", "single_label", 10, 0.7, LinearProbe),  # too few to adapt an image backbone
    ("image", "single_label", 100, 0.7, LinearProbe),  # no validation split to check a fine-tune against
    ("text", "single_label", 10, 0.7, Contrastive),  # SetFit's regime
    ("text", "multi_label", 10, 0.7, LinearProbe),  # "same class" has no single meaning
    ("text", "single_label", 100, 0.7, LoRA),
    ("text", "multi_label", 100, 0.7, LoRA),
    ("text", "single_label", 5000, 0.7, Full),
    ("text", "single_label", 100, 0.995, LinearProbe),  # saturated: nothing left to gain
    ("image", "single_label", 5000, 0.995, LinearProbe),
    ("image", "single_label", 5000, 0.7, LinearProbe),
])
def test_auto_rules(modality, task, per_class, score, expected):
    decision = Auto().decide(modality, task, per_class, _Probe(score))
    if modality == "image" and per_class >= 25 and score < 0.98:  # with a validation split: tried, then verified
        verified = Auto().decide(modality, task, per_class, _Probe(score), can_verify=True)
        assert type(verified.strategy) is (Full if per_class >= 1000 else Freeze) and verified.verify
    assert type(decision.strategy) is expected
    assert "0.%03d accuracy in 5-fold CV" % round(score * 1000) in decision.reason
    assert type(Auto(budget="fast").decide(modality, task, per_class, _Probe(score)).strategy) is LinearProbe


@pytest.mark.parametrize("estimate,spent,expected", [(50.0, 5.0, LoRA), (96.0, 5.0, LinearProbe), (None, 0.0, LinearProbe)])
def test_auto_time_budget(estimate, spent, expected):
    """A candidate runs only if its estimated seconds fit in what the probe left of the budget."""
    decision = Auto(budget=100).decide("text", "single_label", 100, _Probe(0.7), estimate=lambda s: estimate, spent=spent)
    assert type(decision.strategy) is expected
    assert ("would take" in decision.reason) == (expected is LinearProbe)


@pytest.mark.parametrize("budget", ["slow", 0, -5, float("inf"), True, None])
def test_auto_budget_is_validated(budget):
    with pytest.raises(StrategyError, match="auto budget"):
        Auto(budget=budget)


@pytest.mark.parametrize("strategy,budget,match", [
    ("lora", 60, "only applies to strategy='auto'"),
    (Auto(budget="fast"), 60, "in one place"),
    ("auto", "slow", "auto budget must be"),
])
def test_adapt_auto_budget_errors(strategy, budget, match, tiny_models):
    with pytest.raises(TransferkitError, match=match):
        adapt(tiny_models["cnn"], toy_data("cnn", "single_label"), strategy=strategy, auto_budget=budget)


@pytest.mark.parametrize("probe_wins", [True, False])
def test_auto_verifies_a_candidate_on_the_validation_split(probe_wins, tiny_models, monkeypatch):
    """With >= 10 validation examples per class, a fine-tuned candidate is kept only if it beats the probe there;
    when the probe wins, the result is exactly the plain linear probe (the body untouched)."""
    import transferkit.runner as runner

    monkeypatch.setattr(runner, "_probe_score", lambda *a, **k: 2.0 if probe_wins else -1.0)
    images = [x for x, _ in toy_data("cnn", "single_label", n_per_class=70)]
    names = np.random.default_rng(0).permutation(["red", "green", "blue"] * 70)  # labels the probe cannot saturate
    data = list(zip(images, names))
    run = adapt(tiny_models["cnn"], data, max_steps=4, progress_bar=False)
    reason = run.config.resolved["strategy_reason"]
    assert "kept only if it beats the probe" in reason and "validation accuracy" in reason
    if not probe_wins:
        assert run.config.strategy["name"] == "freeze" and "freeze kept" in reason
        return
    assert run.config.strategy["name"] == "linear-probe" and "the probe is kept" in reason
    plain = adapt(tiny_models["cnn"], data, strategy="linear-probe", progress_bar=False)
    inputs = [x for x, _ in data[:6]]
    np.testing.assert_allclose(run.predict_proba(inputs), plain.predict_proba(inputs), atol=1e-6)


def test_auto_measures_and_is_reproducible(tiny_models):
    runs = [adapt(tiny_models["cnn"], toy_data("cnn", "single_label"), progress_bar=False) for _ in range(2)]
    reasons = [r.config.resolved["strategy_reason"] for r in runs]
    assert runs[0].config.strategy["name"] == "linear-probe" and reasons[0] == reasons[1]
    assert "accuracy in 5-fold CV" in reasons[0]
    assert runs[0].config.resolved["probe"] == runs[1].config.resolved["probe"] | {"seconds": runs[0].config.resolved["probe"]["seconds"]}
    np.testing.assert_array_equal(runs[0].predict_proba([x for x, _ in toy_data("cnn", "single_label")[:4]]),
                                  runs[1].predict_proba([x for x, _ in toy_data("cnn", "single_label")[:4]]))


def test_frozen_modules_stay_in_eval_mode(tiny_models):
    backbone = _backbone(tiny_models["cnn"])
    Freeze(groups=2).apply(backbone, 1e-3)
    frozen = frozen_modules(backbone.model)
    set_train_mode(backbone.model, frozen)
    bns = {n: m for n, m in backbone.model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
    lower = {p.rsplit(".", 1)[0] for g in backbone.groups[:2] for p in g.params}
    assert any(n in lower for n in bns)
    for name, bn in bns.items():
        assert bn.training == (name not in lower), name


@pytest.mark.parametrize("kind", ["cnn", "bert"])
def test_feature_cache_trains_the_same_head(kind, tiny_models):
    """Cached features replay the head exactly; switching the cache off gives the plain loop."""
    from transferkit.training.feature_cache import extract, head_module

    backbone = _backbone(tiny_models[kind])
    LinearProbe().apply(backbone, 1e-3)
    head = head_module(backbone)
    assert head is not None and {n for n, _ in head.named_parameters()}
    from transferkit.data import ExampleDataset, make_loader
    from transferkit.tasks import get_task

    data = toy_data(kind, "single_label")
    loader = make_loader(ExampleDataset([x for x, _ in data], np.zeros(len(data), dtype=np.int64), backbone.modality),
                         backbone.preprocess, get_task("single_label"), 8, training=False)
    feats, _ = extract(backbone, head, loader)
    assert feats.shape == (len(data), backbone.num_features if kind == "cnn" else feats.shape[1])
    cached = adapt(tiny_models[kind], data, strategy="linear-probe", **QUICK)
    plain = adapt(tiny_models[kind], data, strategy="linear-probe", feature_cache=False, **QUICK)
    assert cached.config.resolved["feature_cache"] and not plain.config.resolved["feature_cache"]
    assert len(plain.history) == QUICK["epochs"] and len(cached.history) == 1  # solved, not trained


def test_no_feature_cache_for_gpt2(tiny_models):
    result = adapt(tiny_models["gpt2"], toy_data("gpt2", "single_label"), strategy="linear-probe", **QUICK)
    assert not result.config.resolved["feature_cache"] and len(result.history) == QUICK["epochs"]


@pytest.mark.parametrize("strategy", ["freeze", "lora", "full"])
def test_lp_ft_starts_from_the_solved_probe_head(strategy, tiny_models):
    """head_init='probe' (the default): training starts where the converged probe ends, not from a random head."""
    data = toy_data("bert", "single_label")
    runs = {init: adapt(tiny_models["bert"], data, strategy=strategy, head_init=init, **QUICK) for init in ("probe", "random")}
    assert runs["probe"].config.resolved["head_init"].startswith("probe (C=")
    assert runs["random"].config.resolved["head_init"] == "random"
    assert runs["probe"].history[0]["train_loss"] < runs["random"].history[0]["train_loss"]


@pytest.mark.parametrize("env,given,expected", [(None, None, "no"), ("bf16", None, "bf16"), ("bf16", "no", "no"),
                                                (None, "bf16", "bf16")])
def test_precision_comes_from_the_launch_config_unless_given(env, given, expected, monkeypatch):
    from transferkit.training.loop import precision

    if env is None:
        monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    else:
        monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", env)  # what `accelerate launch --config_file` exports
    assert precision(TrainingConfig(mixed_precision=given)) == expected


@pytest.mark.parametrize("kind,stage,refused", [("FSDP", None, True), ("DEEPSPEED", 3, True), ("DEEPSPEED", 2, False),
                                                ("MULTI_GPU", None, False), ("MULTI_CPU", None, False)])
def test_launches_that_split_the_weights_are_refused_with_the_alternative(kind, stage, refused):
    from types import SimpleNamespace

    from accelerate.utils import DistributedType

    from transferkit.training.loop import check_sharding

    accelerator = SimpleNamespace(distributed_type=DistributedType[kind],
                                  state=SimpleNamespace(deepspeed_plugin=SimpleNamespace(zero_stage=stage)))
    if refused:
        with pytest.raises(TransferkitError, match="does not train under .*multi_gpu.yaml"):
            check_sharding(accelerator)
    else:
        check_sharding(accelerator)
