"""Contrastive body tuning: the class-balanced sampler, the two losses, the loop, and the strategy's options."""
import math

import numpy as np
import pytest
import torch

from transferkit import testing
from transferkit.backbones import resolve_backbone
from transferkit.config import TrainingConfig
from transferkit.errors import StrategyError
from transferkit.strategies import strategy_from
from transferkit.strategies.contrastive import Contrastive
from transferkit.training.contrastive import (class_balanced_batches, contrastive_tune, cosine_pair_loss,
                                              default_steps, supcon_loss)

# --- sampler ---------------------------------------------------------------------------------------


def test_batches_hand_checked():
    # 3 classes, batch 4: two classes a batch, 2 examples each; class 2 has one example, so it gives one
    y = np.array([0, 0, 0, 1, 1, 2])
    batches = class_balanced_batches(y, batch_size=4, steps=6, seed=0)
    for b in batches:
        assert len(set(b.tolist())) == len(b), "an example repeated inside a batch"
        counts = np.bincount(y[b], minlength=3)
        assert counts.max() >= 2, f"batch {b} has no positive pair"
        assert (counts > 0).sum() == 2 and len(b) in (3, 4)
    seen = np.concatenate(batches)
    assert set(y[seen]) == {0, 1, 2} and set(seen.tolist()) == set(range(6))


@pytest.mark.parametrize("n_classes,batch_size,per", [(3, 16, (6, 5, 5)), (10, 8, (2, 2, 2, 2)), (2, 5, (3, 2))])
def test_batches_split_evenly_and_every_class_comes_round(n_classes, batch_size, per):
    y = np.repeat(np.arange(n_classes), 20)
    batches = class_balanced_batches(y, batch_size, steps=12, seed=3)
    for b in batches:
        assert sorted(np.bincount(y[b])[np.bincount(y[b]) > 0].tolist(), reverse=True) == list(per)
    rounds = math.ceil(n_classes / len(per))  # the first pass over the classes shows every class
    assert set(y[np.concatenate(batches[:rounds])]) == set(range(n_classes))
    shown = np.zeros(n_classes, int)
    for b in batches:
        shown[np.unique(y[b])] += 1
    assert shown.max() - shown.min() <= 1, f"classes shown unevenly: {shown}"


def test_batches_deterministic_per_seed():
    y = np.repeat(np.arange(4), 7)
    a, b, c = (class_balanced_batches(y, 8, 10, seed=s) for s in (1, 1, 2))
    assert all(np.array_equal(x, z) for x, z in zip(a, b))
    assert not all(np.array_equal(x, z) for x, z in zip(a, c))


def test_batches_always_hold_a_positive_when_most_classes_are_singletons():
    y = np.array([0, 1, 2, 3, 4, 5, 6, 6])  # only class 6 can form a pair
    for b in class_balanced_batches(y, batch_size=4, steps=20, seed=0):
        assert np.bincount(y[b]).max() >= 2


def test_batches_refuse_what_cannot_pair():
    with pytest.raises(StrategyError, match="at least one class with 2 or more"):
        class_balanced_batches(np.array([0, 1, 2]), 4, 3, seed=0)
    with pytest.raises(StrategyError, match=r"shape \(4, 2\)"):
        class_balanced_batches(np.eye(2)[[0, 1, 0, 1]], 4, 3, seed=0)  # multi-hot targets


def test_default_steps():
    assert default_steps(30, 16, passes=20, min_steps=40, max_steps=1000) == 40  # the floor decides at few shots
    assert default_steps(150, 16, passes=20, min_steps=40, max_steps=1000) == 188
    assert default_steps(10**6, 16, passes=20, min_steps=40, max_steps=1000) == 1000

# --- losses ----------------------------------------------------------------------------------------


def _three_points():
    # e1 and e2 same class at 90 degrees; e3 the other class, opposite e1
    return torch.tensor([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0]]), torch.tensor([0, 0, 1])


def test_supcon_hand_computed():
    z, y = _three_points()
    # anchor 1: cos(1,2)=0 against {e2: 0, e3: -1}; anchor 2: cos(2,1)=0 against {e1: 0, e3: 0};
    # anchor 3 has no positive, so it is left out
    expected = (math.log(1 + math.exp(-1.0)) + math.log(2.0)) / 2
    assert supcon_loss(z, y, temperature=1.0).item() == pytest.approx(expected, rel=1e-6)
    expected_t = (math.log(1 + math.exp(-1 / 0.5)) + math.log(2.0)) / 2
    assert supcon_loss(z, y, temperature=0.5).item() == pytest.approx(expected_t, rel=1e-6)


def test_cosine_pairs_hand_computed():
    z, y = _three_points()
    # positive pair (1,2): (0-1)^2 = 1; negative pairs (1,3): (-1)^2 = 1, (2,3): 0 -> mean 0.5; then (1 + 0.5) / 2
    assert cosine_pair_loss(z, y).item() == pytest.approx(0.75, rel=1e-6)


def test_supcon_matches_the_paper_formula_written_as_loops():
    # Khosla et al. eq. 2, term by term; the vectorised loss was also checked against setfit 1.2's SupConLoss
    # (equal to 1e-6 when every class has two examples; setfit's gives NaN for an anchor without a positive)
    torch.manual_seed(0)
    z, y = torch.randn(9, 5), torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 3])
    t, zn = 0.1, torch.nn.functional.normalize(z, dim=1)
    terms = []
    for i in range(9):
        others = [a for a in range(9) if a != i]
        positives = [p for p in others if y[p] == y[i]]
        if positives:
            denominator = sum(math.exp(zn[i] @ zn[a] / t) for a in others)
            terms.append(-sum(math.log(math.exp(zn[i] @ zn[p] / t) / denominator) for p in positives) / len(positives))
    assert supcon_loss(z, y, temperature=t).item() == pytest.approx(sum(terms) / len(terms), rel=1e-5)


# --- the loop on a tiny BERT -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bert_folder(tmp_path_factory):
    return str(testing.tiny_bert(tmp_path_factory.mktemp("contrastive") / "bert"))


def _toy(n_per_class=6):
    data = testing.toy_texts(n_per_class)
    labels = sorted({label for _, label in data})
    return [t for t, _ in data], np.array([labels.index(label) for _, label in data]), labels


def _embedding_loss(backbone, texts, y):
    backbone.model.eval()
    with torch.no_grad():
        z = backbone.model.forward_features(**backbone.preprocess(texts))
    return supcon_loss(z, torch.as_tensor(y), 0.1).item()


def test_tuning_pulls_classes_apart_and_changes_only_the_chosen_groups(bert_folder):
    torch.set_num_threads(1)  # tiny model: threads only add overhead
    texts, y, labels = _toy()
    backbone = resolve_backbone(bert_folder, labels, "single_label", {"max_length": 32})
    before = {n: p.detach().clone() for n, p in backbone.model.named_parameters()}
    loss_before = _embedding_loss(backbone, texts, y)
    # the upper layer group only
    strategy = Contrastive(loss="supcon", steps=25, batch_size=8, lr_scale=5.0, temperature=0.1, groups=1)
    groups = strategy.apply(backbone, learning_rate=1e-3)
    assert [g["name"] for g in groups] == ["layer.1"]
    assert all(g["lr"] == pytest.approx(5e-3) for g in groups)
    result = contrastive_tune(backbone, texts, y, groups, TrainingConfig(seed=0, progress_bar=False), strategy)
    assert result.steps == 25 and result.final_loss < result.initial_loss
    assert _embedding_loss(backbone, texts, y) < loss_before - 0.05
    tuned = {n for g in backbone.groups if g.name == "layer.1" for n in g.params}
    for name, p in backbone.model.named_parameters():
        changed = not torch.equal(p.detach().cpu(), before[name])
        if name in tuned and p.ndim > 1:
            assert changed, f"{name} was meant to be tuned"
        elif name not in tuned:
            assert not changed, f"{name} changed but only layer.1 was tuned (head: {backbone.head})"
    assert not backbone.model.training


@pytest.mark.parametrize("groups,tuned", [("all", ["embeddings", "layer.0", "layer.1"]),
                                          ("upper", ["layer.0", "layer.1"]), (1, ["layer.1"])])
def test_groups_choose_the_upper_layers_and_never_the_head(bert_folder, groups, tuned):
    backbone = resolve_backbone(bert_folder, ["a", "b"], "single_label", {"max_length": 32})
    param_groups = Contrastive(groups=groups).apply(backbone, learning_rate=1e-3)
    assert [g["name"] for g in param_groups] == tuned
    assert all(g["lr"] == pytest.approx(2e-5) for g in param_groups)
    trainable = {n for n, p in backbone.model.named_parameters() if p.requires_grad}
    assert trainable == {n for g in backbone.groups if g.name in tuned for n in g.params}
    assert not trainable & set(backbone.head)


def test_tuning_is_deterministic_for_a_seed(bert_folder):
    torch.set_num_threads(1)
    texts, y, labels = _toy(4)
    runs = []
    for _ in range(2):
        backbone = resolve_backbone(bert_folder, labels, "single_label", {"max_length": 32})
        strategy = Contrastive(steps=4, batch_size=6, loss="cosine", lr_scale=5.0)
        result = contrastive_tune(backbone, texts, y, strategy.apply(backbone, 1e-3),
                                  TrainingConfig(seed=5, progress_bar=False), strategy)
        runs.append((result.losses, backbone.model.state_dict()["body.encoder.layer.0.attention.self.query.weight"]))
    assert runs[0][0] == runs[1][0] and torch.equal(runs[0][1], runs[1][1])

# --- options ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("options,shown", [
    ({"loss": "supcom"}, "'supcom'.*Did you mean 'supcon'"), ({"temperature": 0}, "temperature.*got 0"),
    ({"steps": 0}, "steps.*got 0"), ({"batch_size": 1}, "batch_size.*got 1"), ({"groups": "lower"}, "got 'lower'"),
    ({"groups": 0}, "groups.*got 0"), ({"lr_scale": -1.0}, "lr_scale.*got -1.0"),
    ({"min_steps": 50, "max_steps": 10}, "got 50 and 10"), ({"passes": "many"}, "passes.*got 'many'"),
    ({"warmup_ratio": 1.0}, "warmup_ratio.*got 1.0"), ({"C": 0}, "C must be.*got 0"), ({"folds": 1}, "folds.*got 1"),
])
def test_invalid_options_name_the_value(options, shown):
    with pytest.raises(StrategyError, match=shown):
        Contrastive(**options)


def test_multi_label_and_images_are_refused_before_loading():
    with pytest.raises(StrategyError, match="task='multi_label'.*linear-probe"):
        Contrastive().check("multi_label", "text")
    with pytest.raises(StrategyError, match="for text encoders.*no better than the linear probe"):
        Contrastive().check("single_label", "image")
    Contrastive().check("single_label", "text")


def test_registered_and_round_trips():
    strategy = strategy_from({"name": "contrastive", "loss": "cosine", "groups": 2})
    assert isinstance(strategy, Contrastive) and strategy.loss == "cosine"
    assert strategy_from(strategy.to_dict()) == strategy


def test_a_decoder_is_refused_with_the_reason(tmp_path):
    texts, y, labels = _toy(3)
    backbone = resolve_backbone(str(testing.tiny_gpt2(tmp_path / "gpt2")), labels, "single_label", {"max_length": 32})
    strategy, cfg = Contrastive(steps=2, batch_size=4), TrainingConfig(progress_bar=False)
    with pytest.raises(StrategyError, match="strategy='lora'"):
        contrastive_tune(backbone, texts, y, strategy.apply(backbone, 1e-3), cfg, strategy)
