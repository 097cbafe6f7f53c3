"""Token classification (NER) and causal-LM adaptation: the grid of what must always hold, and the pieces under it.

The grid: (tiny BERT, token_classification), (tiny GPT-2, causal_lm), (tiny Llama, causal_lm) x (lora, freeze, full,
auto). Every case is checked against the model exactly as adapt() built it before training: output shapes (a tag
score per sub-word, a vocabulary row per token) and finite values; exactly the intended parameters changed (merged
LoRA: only the targeted Linear / Conv1D weights and the new head, never an embedding or a norm; freeze: the lower
groups untouched); the training loss falls on learnable data; save -> load gives identical predictions, scores and
generations, from the merged folder and from the peft-adapter folder; plain transformers opens the saved folder
(AutoModelForTokenClassification with the tag names, AutoModelForCausalLM) and computes the same logits.

Under the grid: word tags meeting sub-words on a tokenizer whose pieces are known, entity scores worked out by
hand and against seqeval on random tag sequences, raw text split into words with offsets, bad input refused
with the sentence named, and the task read from the data when ``task=`` is not given.
"""
import math

import numpy as np
import pytest
import torch
from accelerate.utils import set_seed
from torch import nn

from transferkit import adapt, load, testing
from transferkit.backbones import resolve_backbone
from transferkit.backbones.preprocess import TextPreprocess
from transferkit.errors import ConfigError, DataError, ModelNotFoundError, StrategyError
from transferkit.ner_data import detokenize, order_messages, to_conll
from transferkit.strategies import LoRA, lora_parameter_count
from transferkit.tasks import get_task, read_for
from transferkit.tasks.causal_lm import pack
from transferkit.tasks.entities import entity_scores, per_type, spans, split_words
from transferkit.tasks.token_classification import TokenClassification

GRID = [("bert", "token_classification"), ("gpt2", "causal_lm"), ("llama", "causal_lm")]
STRATEGIES = ["lora", "freeze", "full", "auto"]
# No early stopping, so every case trains its full schedule and the history holds every epoch.
COMMON = dict(batch_size=8, seed=0, early_stopping_patience=None, progress_bar=False)
TRAIN = {"token_classification": dict(COMMON, epochs=4, learning_rate=3e-2, max_length=32),
         "causal_lm": dict(COMMON, epochs=3, learning_rate=1e-2, max_length=16)}
TYPES = {"sports": "SPORT", "food": "FOOD", "music": "MUSIC"}
PROMPT = "the team"


# --- data -----------------------------------------------------------------------------------------------------
def toy_ner(n: int, seed: int) -> dict[str, list]:
    """Learnable BIO data in the tiny BERT's vocabulary: topic words are entities of their topic, filler is O.

    Some entities are written as one hyphenated word ("pizza-pasta": three sub-words for the tiny BERT's
    tokenizer, one tag), so training meets words with several sub-words.
    """
    rng = np.random.default_rng(seed)
    tokens, tags = [], []
    for _ in range(n):
        words, labels = [], []
        for _ in range(int(rng.integers(2, 4))):
            filler = [str(w) for w in rng.choice(testing.FILLER, int(rng.integers(1, 3)))]
            words, labels = words + filler, labels + ["O"] * len(filler)
            topic = list(TYPES)[int(rng.integers(3))]
            chosen = [str(w) for w in rng.choice(testing.TOPICS[topic].split(), int(rng.integers(1, 3)), replace=False)]
            if len(chosen) == 2 and rng.random() < 0.3:
                chosen = ["-".join(chosen)]
            words += chosen
            labels += [("B-" if j == 0 else "I-") + TYPES[topic] for j in range(len(chosen))]
        tokens.append(words)
        tags.append(labels)
    return {"tokens": tokens, "ner_tags": tags}


def toy_lm_texts(n_per_class: int, seed: int) -> list[str]:
    """Short texts of the tiny LMs' own words (each word one BPE token): learnable next-token statistics."""
    return [text for text, _ in testing.toy_texts(n_per_class, seed=seed)]


def train_data(task: str):
    return toy_ner(40, seed=0) if task == "token_classification" else toy_lm_texts(16, seed=0)


def held_out(task: str):
    return toy_ner(12, seed=1) if task == "token_classification" else toy_lm_texts(4, seed=1)


# --- helpers --------------------------------------------------------------------------------------------------
def _initial_backbone(folder, result):
    """The model exactly as adapt() built it before training: same seed, same head initialisation."""
    set_seed(0)
    return resolve_backbone(folder, result.labels, result.task, {"max_length": result.config.training.max_length})


def _changed(before: dict, after: dict) -> set:
    assert before.keys() == after.keys()
    return {k for k in before if not torch.equal(before[k], after[k])}


def _embedding_and_norm_params(model: nn.Module) -> set:
    """Parameters of embedding tables and normalisation layers (LayerNorm, RMSNorm): LoRA never touches these."""
    names = set()
    for prefix, module in model.named_modules():
        if isinstance(module, nn.Embedding) or "Norm" in type(module).__name__:
            names |= {f"{prefix}.{n}" for n, _ in module.named_parameters(recurse=False)}
    return names


def _batch(result, task: str, data) -> dict[str, torch.Tensor]:
    """A model batch of three examples, made the way training makes them (labels removed)."""
    preprocess = result.backbone.preprocess
    if task == "token_classification":
        inputs = data["tokens"][:3]
    else:
        inputs = pack(data, preprocess.tokenizer, preprocess.max_length, keep_remainder=False)[:3]
    batch = get_task(task).collate(preprocess, inputs, None, training=False)
    batch.pop("labels")
    return batch


def _logits(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(**batch).logits


def _texts(data) -> list[str]:
    return [detokenize(words) for words in data["tokens"]]


@pytest.fixture(scope="module")
def runs(tiny_models, tmp_path_factory):
    """Train each grid case once (lazily); save it merged, and LoRA also as a peft adapter."""
    cache = {}

    def get(kind, task, strategy):
        key = (kind, task, strategy)
        if key not in cache:
            data = train_data(task)
            result = adapt(tiny_models[kind], data, task=task, strategy=strategy, **TRAIN[task])
            root = tmp_path_factory.mktemp("-".join(key))
            folders = {"merged": result.save(root / "merged")}
            if result.config.strategy["name"] == "lora":
                folders["adapter"] = result.save(root / "adapter", merge_lora=False)
            cache[key] = (result, data, folders)
        return cache[key]

    return get


# --- the grid -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("kind,task", GRID)
def test_grid_case(kind, task, strategy, runs, tiny_models):
    result, data, _ = runs(kind, task, strategy)
    assert result.task == task

    # auto has no probe to measure for these tasks: it runs the task's own pick, LoRA, and nothing else
    if strategy == "auto":
        lora, _, _ = runs(kind, task, "lora")
        assert result.config.strategy == lora.config.strategy and result.config.strategy["name"] == "lora"
        assert result.config.resolved["strategy_reason"] == get_task(task).strategy_reason
        assert not _changed(lora.model.state_dict(), result.model.state_dict()), "auto must train exactly as lora"

    # output shapes and finite values: a score per tag for every sub-word; a vocabulary row for every token
    batch = _batch(result, task, data)
    logits = _logits(result.model, batch)
    width = {"token_classification": len(result.labels), "causal_lm": result.model.config.vocab_size}[task]
    assert logits.shape == (3, batch["input_ids"].shape[1], width)
    assert torch.isfinite(logits).all()
    if task == "causal_lm":
        assert result.labels == [] and width == len(result.backbone.preprocess.tokenizer)

    # exactly the intended parameters changed
    initial = _initial_backbone(tiny_models[kind], result)
    changed = _changed(initial.model.state_dict(), result.model.state_dict())
    params = {n for n, _ in initial.model.named_parameters()}
    head, groups = set(initial.head), initial.groups
    if task == "causal_lm":
        assert head == set(), "a causal LM keeps its pretrained LM head: nothing is new"
    else:
        assert head and head <= changed, "the new tag head must train"
    if strategy in ("lora", "auto"):
        targets = LoRA().target_layers(initial)
        target_weights = {f"{name}.weight" for name in targets}
        assert changed & params <= head | target_weights
        assert changed & target_weights, "merged LoRA updates must change the targeted weights"
        fixed = _embedding_and_norm_params(initial.model) & params
        assert fixed and not changed & fixed, "LoRA never changes an embedding or a norm"
        expected = sum(lora_parameter_count(m, 8) for m in targets.values()) + sum(
            p.numel() for n, p in initial.model.named_parameters() if n in head)
        assert result.config.resolved["trainable_parameters"] == expected
    elif strategy == "freeze":
        n_frozen = int(round(0.5 * len(groups)))
        frozen = {p for g in groups[:n_frozen] for p in g.params}
        trained = {p for g in groups[n_frozen:] for p in g.params}
        assert frozen and not changed & frozen
        assert changed & trained
    else:  # full: the input-side group trains too, at its lower rate
        assert changed & set(groups[0].params)
        assert changed & set(groups[-1].params)

    # the training loss falls on learnable data
    losses = [h["train_loss"] for h in result.history]
    assert len(losses) == TRAIN[task]["epochs"]
    assert losses[-1] < losses[0], losses

    # what the task returns
    if task == "token_classification":
        texts = _texts(held_out(task))
        predicted = result.predict(texts)
        assert len(predicted) == len(texts) and any(predicted), "a trained tagger finds entities in held-out text"
        for text, found in zip(texts, predicted):
            for entity in found:
                assert set(entity) == {"entity_group", "word", "start", "end", "score"}
                assert text[entity["start"]:entity["end"]] == entity["word"]
                assert entity["entity_group"] in TYPES.values() and 0 < entity["score"] <= 1
        scores = result.evaluate(held_out(task))
        assert set(scores) == {"entity_f1", "entity_precision", "entity_recall", "token_accuracy", "loss"}
        assert all(0 <= scores[k] <= 1 for k in scores if k != "loss") and math.isfinite(scores["loss"])
    else:
        scores = result.evaluate(held_out(task))
        assert set(scores) == {"perplexity", "base_perplexity", "loss"}
        assert scores["perplexity"] == pytest.approx(math.exp(scores["loss"]))
        assert scores["perplexity"] < scores["base_perplexity"], "adapting on this text must lower its perplexity"
        continuation = result.generate(PROMPT, max_new_tokens=4)
        assert isinstance(continuation, str)
        assert result.generate([PROMPT, "good"], max_new_tokens=4) == [continuation, result.generate("good", 4)]


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("kind,task", GRID)
def test_save_load_identical(kind, task, strategy, runs):
    """Every saved folder (merged; LoRA also as a peft adapter) reloads to the same predictions and scores."""
    result, data, folders = runs(kind, task, strategy)
    assert set(folders) == ({"merged", "adapter"} if strategy in ("lora", "auto") else {"merged"})
    evaluation = held_out(task)
    expected_scores = result.evaluate(evaluation)
    expected_logits = _logits(result.model, _batch(result, task, data))
    for how, folder in folders.items():
        reloaded = load(folder)
        assert reloaded.task == task and reloaded.labels == result.labels, how
        assert reloaded.config.strategy == result.config.strategy
        assert reloaded.history == result.history
        assert torch.equal(_logits(reloaded.model, _batch(reloaded, task, data)), expected_logits), how
        assert reloaded.evaluate(evaluation) == expected_scores, how
        if task == "token_classification":
            texts = _texts(evaluation)
            assert reloaded.predict(texts) == result.predict(texts), how
        else:
            assert reloaded.generate(PROMPT, max_new_tokens=6) == result.generate(PROMPT, max_new_tokens=6), how


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("kind,task", GRID)
def test_plain_transformers_opens_saved_folder(kind, task, strategy, runs, tiny_models):
    """The saved folder is transformers' own: the Auto class of the task opens it, with the tag names, and computes
    the same logits; a LoRA adapter folder is peft's own, on the base model."""
    from transformers import AutoModelForCausalLM, AutoModelForTokenClassification, AutoTokenizer

    result, data, folders = runs(kind, task, strategy)
    batch = _batch(result, task, data)
    ours = _logits(result.model, batch)
    auto = AutoModelForTokenClassification if task == "token_classification" else AutoModelForCausalLM
    model = auto.from_pretrained(folders["merged"])
    if task == "token_classification":
        assert [model.config.id2label[i] for i in range(len(result.labels))] == result.labels
        assert {label: i for i, label in enumerate(result.labels)} == model.config.label2id
    assert AutoTokenizer.from_pretrained(folders["merged"]).is_fast
    assert list(folders["merged"].glob("*.safetensors")) and not list(folders["merged"].glob("*.bin"))
    torch.testing.assert_close(_logits(model, batch), ours, rtol=0, atol=1e-6)
    if "adapter" in folders:
        from peft import PeftModel

        head = {"num_labels": len(result.labels)} if task == "token_classification" else {}
        adapted = PeftModel.from_pretrained(auto.from_pretrained(tiny_models[kind], **head), str(folders["adapter"]))
        # unmerged LoRA computes W x + B A x where the merged model computes (W + B A) x: equal up to rounding
        torch.testing.assert_close(_logits(adapted, batch), ours, rtol=1e-4, atol=1e-5)


# --- sub-words: word tags meet a tokenizer whose pieces are known ----------------------------------------------
PIECES = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "the", "play", "##ing", "un", "##believ", "##able", "york"]
TAGS = ["O", "B-X", "I-X", "B-Y"]
ZERO_WIDTH = "\u200b"


@pytest.fixture(scope="module")
def wordpiece():
    """A BERT-style WordPiece tokenizer with a vocabulary small enough to know every split by hand."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece({w: i for i, w in enumerate(PIECES)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, lowercase=True)  # drops control/format chars
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]",
                                                       special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]")


def _ids(tags: list[str]) -> list[int]:
    return [TAGS.index(t) for t in tags]


def test_first_sub_word_carries_the_tag(wordpiece):
    words = [["the", "playing", ZERO_WIDTH, "unbelievable", "york"], ["york", "un"]]
    tags = [["O", "B-X", "O", "I-X", "B-Y"], ["B-Y", "O"]]
    # the zero-width space really yields no sub-word with this tokenizer (its normaliser removes format characters)
    alone = wordpiece([ZERO_WIDTH], is_split_into_words=True)
    assert alone["input_ids"] == [2, 3] and alone.word_ids() == [None, None]

    batch = TokenClassification().collate(TextPreprocess(wordpiece, max_length=32), words, [_ids(t) for t in tags],
                                          training=False)
    pieces = [wordpiece.convert_ids_to_tokens(row) for row in batch["input_ids"].tolist()]
    assert pieces == [["[CLS]", "the", "play", "##ing", "un", "##believ", "##able", "york", "[SEP]"],
                      ["[CLS]", "york", "un", "[SEP]", "[PAD]", "[PAD]", "[PAD]", "[PAD]", "[PAD]"]]
    O, BX, IX, BY, NO = 0, 1, 2, 3, -100
    # [CLS] the play ##ing un ##believ ##able york [SEP]: only first pieces tagged; word 2 has no position at all
    assert batch["labels"]["tags"].tolist() == [[NO, O, BX, NO, IX, NO, NO, BY, NO],
                                                [NO, BY, O, NO, NO, NO, NO, NO, NO]]
    assert batch["labels"]["first"].tolist() == [[-1, 0, 1, -1, 3, -1, -1, 4, -1],
                                                 [-1, 0, 1, -1, -1, -1, -1, -1, -1]]
    special = torch.isin(batch["input_ids"], torch.tensor([0, 2, 3]))
    assert (batch["labels"]["tags"][special] == NO).all(), "special and padding tokens are never scored"
    assert batch["labels"]["n_words"].tolist() == [5, 2]
    assert batch["attention_mask"].tolist()[1] == [1, 1, 1, 1, 0, 0, 0, 0, 0]


def _peaked(rows: list[list[int]], n_labels: int, height: float = 3.0) -> torch.Tensor:
    """Logits with ``height`` at each position's chosen tag and 0 elsewhere."""
    logits = torch.zeros(len(rows), len(rows[0]), n_labels)
    for r, row in enumerate(rows):
        for p, tag in enumerate(row):
            logits[r, p, tag] = height
    return logits


TOP = math.exp(3) / (math.exp(3) + 3)  # softmax probability of a peak of 3 among 4 tags


def test_truncation_at_max_length_leaves_the_rest_untagged_and_predicted_o(wordpiece):
    from transferkit.tasks.token_data import Words

    task = TokenClassification()
    words = [Words(["the", "playing", "unbelievable", "york"])]
    batch = task.collate(TextPreprocess(wordpiece, max_length=5), words, [_ids(["O", "B-X", "I-X", "B-Y"])],
                         training=True)
    # [CLS] the play ##ing [SEP]: the cut keeps [SEP]; words 2 and 3 are never seen, so never scored
    assert wordpiece.convert_ids_to_tokens(batch["input_ids"][0].tolist()) == ["[CLS]", "the", "play", "##ing", "[SEP]"]
    assert batch["labels"]["tags"].tolist() == [[-100, 0, 1, -100, -100]]
    assert batch["labels"]["first"].tolist() == [[-1, 0, 1, -1, -1]]
    assert batch["labels"]["n_words"].tolist() == [4]

    outputs = task.join([task.outputs(_peaked([[0, 0, 1, 3, 3]], len(TAGS)), batch["labels"])])
    assert task.word_tags(outputs[0], TAGS) == (["O", "B-X", "O", "O"], pytest.approx([TOP, TOP, None, None]))
    assert [(e["word"], e["start"], e["end"]) for e in task.decode(outputs, TAGS, None, words)[0]] == [
        ("playing", 4, 11)]
    # gold X(1,3) Y(3,4), predicted X(1,2): nothing right, P = 0/1, R = 0/2; words right: the, playing = 2 of 4
    scores = task.score(outputs, labels=TAGS)
    assert (scores["entity_precision"], scores["entity_recall"], scores["entity_f1"]) == (0, 0, 0)
    assert scores["token_accuracy"] == 0.5
    assert scores["loss"] == pytest.approx(-math.log(TOP))  # the two seen words, both peaked on their gold tag


def test_decode_and_score_read_first_sub_words_only(wordpiece):
    """Only a word's first sub-word decides its tag and enters the loss; a word without sub-words is predicted O."""
    from transferkit.tasks.token_data import Words

    task = TokenClassification()
    sentences = [Words(["the", "playing", ZERO_WIDTH, "unbelievable", "york"]), Words(["york", "the", "playing"])]
    gold = [["O", "B-X", "I-X", "I-X", "B-Y"], ["B-Y", "O", "B-X"]]
    batch = task.collate(TextPreprocess(wordpiece, max_length=32), sentences, [_ids(t) for t in gold], training=False)
    O, BX, IX, BY = 0, 1, 2, 3
    # row 0: [CLS] the play ##ing un ##believ ##able york [SEP]; the peaks on ##ing, ##believ, ##able must not count
    # row 1: [CLS] york the play ##ing [SEP] [PAD] [PAD] [PAD]
    chosen = [[O, O, BX, IX, IX, O, BY, BY, O], [O, BY, O, BX, O, O, O, O, O]]
    outputs = task.join([task.outputs(_peaked(chosen, len(TAGS)), batch["labels"])])
    assert task.word_tags(outputs[0], TAGS) == (["O", "B-X", "O", "I-X", "B-Y"],  # word 2: no sub-word, so O
                                                pytest.approx([TOP, TOP, None, TOP, TOP]))
    assert task.word_tags(outputs[1], TAGS)[0] == ["B-Y", "O", "B-X"]

    # entities: "playing" and "unbelievable" are two X entities (the unseen word between them is O), "york" is Y
    found = task.decode(outputs, TAGS, None, sentences)
    text = sentences[0].text
    assert [(e["entity_group"], e["word"], e["start"], e["end"]) for e in found[0]] == [
        ("X", "playing", 4, 11), ("X", "unbelievable", 14, 26), ("Y", "york", 27, 31)]
    assert all(text[e["start"]:e["end"]] == e["word"] for e in found[0])
    assert [e["score"] for e in found[0]] == pytest.approx([TOP] * 3)
    assert [(e["entity_group"], e["word"]) for e in found[1]] == [("Y", "york"), ("X", "playing")]

    # gold spans X(1,4) Y(4,5) | Y(0,1) X(2,3); predicted X(1,2) X(3,4) Y(4,5) | Y(0,1) X(2,3)
    # right 3 of 5 predicted and of 4 gold: P = 3/5, R = 3/4, F1 = 2PR/(P+R) = (9/10)/(27/20) = 2/3; words 7 of 8
    scores = task.score(outputs, labels=TAGS)
    assert scores["entity_precision"] == pytest.approx(3 / 5) and scores["entity_recall"] == pytest.approx(3 / 4)
    assert scores["entity_f1"] == pytest.approx(2 / 3) and scores["token_accuracy"] == pytest.approx(7 / 8)
    # the loss reads the 7 first sub-words only, each peaked on its gold tag; had a later sub-word been scored
    # (##ing peaked on I-X against the word's B-X), the mean would be higher
    assert scores["loss"] == pytest.approx(-math.log(TOP))


# --- entity scores: by hand, and against seqeval -----------------------------------------------------------------
# (gold, predicted, gold spans of the first sentence, precision, recall, F1, word accuracy), each worked out by hand
HAND = {
    # gold PER(0,2) LOC(3,4) | ORG(0,1) PER(2,3); predicted PER(0,2) ORG(3,4) | ORG(0,1)
    # right: PER(0,2), ORG(0,1) -> P = 2/3, R = 2/4, F1 = 2(2/3)(1/2)/(7/6) = 4/7; words 3/4 + 2/3 = 5/7
    "BIO": ([["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O", "B-PER"]],
            [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "O", "O"]],
            [("PER", 0, 2), ("LOC", 3, 4)], 2 / 3, 1 / 2, 4 / 7, 5 / 7),
    # exact spans only: gold PER(0,2) LOC(3,5); predicted PER(0,1) LOC(3,5) -> 1 of 2 each way, F1 1/2; words 4/5
    "BIO partial span": ([["B-PER", "I-PER", "O", "B-LOC", "I-LOC"]], [["B-PER", "O", "O", "B-LOC", "I-LOC"]],
                         [("PER", 0, 2), ("LOC", 3, 5)], 1 / 2, 1 / 2, 1 / 2, 4 / 5),
    # a stray I- opens an entity (conlleval): gold PER(1,3); predicted PER(1,2) LOC(2,3): P 0/2, R 0/1; words 2/3
    "BIO stray inside": ([["O", "I-PER", "I-PER"]], [["O", "I-PER", "I-LOC"]], [("PER", 1, 3)], 0, 0, 0, 2 / 3),
    # gold PER(0,2) LOC(2,3) ORG(4,7); predicted PER(0,1) PER(1,2) LOC(2,3) ORG(4,7)
    # right: LOC, ORG -> P = 2/4, R = 2/3, F1 = 2(1/2)(2/3)/(7/6) = 4/7; words 5/7 (the two S-PER are wrong)
    "BIOES": ([["B-PER", "E-PER", "S-LOC", "O", "B-ORG", "I-ORG", "E-ORG"]],
              [["S-PER", "S-PER", "S-LOC", "O", "B-ORG", "I-ORG", "E-ORG"]],
              [("PER", 0, 2), ("LOC", 2, 3), ("ORG", 4, 7)], 1 / 2, 2 / 3, 4 / 7, 5 / 7),
    # IOB1: B- only separates touching entities of one type. gold PER(0,2) PER(2,3) LOC(4,5); predicted PER(0,3)
    # LOC(4,5) -> right: LOC; P = 1/2, R = 1/3, F1 = 2(1/2)(1/3)/(5/6) = 2/5; words 4/5
    "IOB1": ([["I-PER", "I-PER", "B-PER", "O", "I-LOC"]], [["I-PER", "I-PER", "I-PER", "O", "I-LOC"]],
             [("PER", 0, 2), ("PER", 2, 3), ("LOC", 4, 5)], 1 / 2, 1 / 3, 2 / 5, 4 / 5),
    # plain types: adjacent words of one type are one entity. gold PER(0,2) LOC(3,5) PER(5,6); predicted PER(0,2)
    # LOC(3,4) PER(5,6) -> P = R = F1 = 2/3; words 5/6
    "plain types": ([["PER", "PER", "O", "LOC", "LOC", "PER"]], [["PER", "PER", "O", "LOC", "O", "PER"]],
                    [("PER", 0, 2), ("LOC", 3, 5), ("PER", 5, 6)], 2 / 3, 2 / 3, 2 / 3, 5 / 6),
    # nothing to find and nothing found: no entity scores to earn (0, as seqeval with zero_division=0); words 3/3
    "no entities": ([["O", "O", "O"]], [["O", "O", "O"]], [], 0, 0, 0, 1),
}


@pytest.mark.parametrize("case", list(HAND))
def test_entity_scores_by_hand(case):
    gold, predicted, gold_spans, precision, recall, f1, accuracy = HAND[case]
    assert spans(gold[0]) == gold_spans
    scores = entity_scores(gold, predicted)
    assert scores == pytest.approx({"entity_precision": precision, "entity_recall": recall, "entity_f1": f1,
                                    "token_accuracy": accuracy})
    assert entity_scores(gold, gold)["entity_f1"] == (1.0 if gold_spans else 0.0)


def test_per_type_scores_by_hand():
    gold, predicted = HAND["BIO"][:2]
    # PER: found 1 (s0), gold 2, right 1 | LOC: found 0, gold 1 | ORG: found 2 (s0 word 3, s1 word 0), gold 1, right 1
    expected = {"LOC": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1},
                "ORG": {"precision": 1 / 2, "recall": 1.0, "f1": 2 / 3, "support": 1},
                "PER": {"precision": 1.0, "recall": 1 / 2, "f1": 2 / 3, "support": 2}}
    found = per_type(gold, predicted)
    assert list(found) == list(expected)
    for kind, scores in expected.items():
        assert found[kind] == pytest.approx(scores), kind


def _random_tags(rng: np.random.Generator, scheme: str, n: int) -> list[list[str]]:
    prefixes = {"BIO": "BI", "BIOES": "BIES"}[scheme]
    out = []
    for _ in range(n):
        row = []
        for _ in range(int(rng.integers(1, 12))):
            if rng.random() < 0.35:
                row.append("O")
            else:
                row.append(f"{prefixes[int(rng.integers(len(prefixes)))]}-{('PER', 'LOC')[int(rng.integers(2))]}")
        out.append(row)
    return out


@pytest.mark.parametrize("scheme", ["BIO", "BIOES"])
@pytest.mark.parametrize("seed", range(20))
def test_entities_agree_with_seqeval(seed, scheme):
    """Random tag sequences, well-formed or not (stray I-, type switches, E- without B-): the same entities and the
    same micro scores as seqeval's default (conlleval) mode."""
    from seqeval.metrics import accuracy_score, f1_score, precision_score, recall_score
    from seqeval.metrics.sequence_labeling import get_entities

    rng = np.random.default_rng(seed)
    gold, predicted = _random_tags(rng, scheme, 30), []
    for row in gold:  # predictions: the gold sequence with about a third of the tags redrawn
        noise = _random_tags(rng, scheme, 1)[0] * 12
        predicted.append([noise[i] if rng.random() < 0.3 else tag for i, tag in enumerate(row)])
    for row in gold + predicted:
        assert spans(row) == [(kind, start, end + 1) for kind, start, end in get_entities(row)], row
    ours = entity_scores(gold, predicted)
    assert ours["entity_precision"] == pytest.approx(precision_score(gold, predicted, zero_division=0))
    assert ours["entity_recall"] == pytest.approx(recall_score(gold, predicted, zero_division=0))
    assert ours["entity_f1"] == pytest.approx(f1_score(gold, predicted, zero_division=0))
    assert ours["token_accuracy"] == pytest.approx(accuracy_score(gold, predicted))


# --- raw text into words -------------------------------------------------------------------------------------------
def test_split_words_offsets_and_edge_punctuation():
    text = 'Order #48213, (via Royal Mail) P256-X on 2026-03-04. "Thanks..."'
    found = split_words(text)
    assert [w for w, _, _ in found] == ["Order", "#48213", ",", "(", "via", "Royal", "Mail", ")", "P256-X", "on",
                                        "2026-03-04", ".", '"', "Thanks", ".", ".", ".", '"']
    assert all(text[start:end] == word for word, start, end in found)
    assert found[:4] == [("Order", 0, 5), ("#48213", 6, 12), (",", 12, 13), ("(", 14, 15)]
    assert ("P256-X", 31, 37) in found
    assert split_words("  ") == [] and split_words("(") == [("(", 0, 1)]


@pytest.mark.parametrize("scheme", ["BIO", "BIOES"])
def test_split_words_gives_back_the_words_of_tokenized_text(scheme):
    """predict() reads raw text as training read its CoNLL words: the words of every generated message come back."""
    data = order_messages(150, seed=12, scheme=scheme)
    for words in data["tokens"]:
        text = detokenize(words)
        found = split_words(text)
        assert [w for w, _, _ in found] == words
        assert all(text[start:end] == word for word, start, end in found)


# --- bad input: a clear error, naming the sentence -----------------------------------------------------------------
def _missing_model(tmp_path) -> str:
    """A model that does not exist: an error about the data proves it was raised before any loading."""
    return str(tmp_path / "no-such-model")


@pytest.mark.parametrize("form", ["dict", "pairs"])
def test_tags_and_words_of_unequal_length(form, tmp_path):
    words, tags = [["the", "pizza"], ["good", "music", "band"]], [["O", "B-FOOD"], ["O", "B-MUSIC"]]
    data = {"tokens": words, "ner_tags": tags} if form == "dict" else list(zip(words, tags))
    for task in ("token_classification", None):
        with pytest.raises(DataError, match=r"sentence 1 \('good music band'\) has 3 words but 2 tags"):
            adapt(_missing_model(tmp_path), data, task=task)


def test_unequal_length_in_the_first_sentence_named_without_task(tmp_path):
    """The task is read from the data even when its very first sentence is the faulty one."""
    data = {"tokens": [["good", "music", "band"], ["the", "pizza"]], "ner_tags": [["O", "B-MUSIC"], ["O", "B-FOOD"]]}
    with pytest.raises(DataError, match=r"sentence 0 \('good music band'\) has 3 words but 2 tags"):
        adapt(_missing_model(tmp_path), data)


@pytest.mark.parametrize("where", [0, 1])
def test_empty_sentence(where, tmp_path):
    words, tags = [["the", "pizza"], ["good", "music"]], [["O", "B-FOOD"], ["O", "B-MUSIC"]]
    words[where], tags[where] = [], []
    for data in ({"tokens": words, "ner_tags": tags}, list(zip(words, tags))):
        for task in ("token_classification", None):
            with pytest.raises(DataError, match=f"sentence {where} is empty"):
                adapt(_missing_model(tmp_path), data, task=task)


def test_word_that_is_not_a_string(tmp_path):
    words, tags = [[1, 2], ["good", "music"]], [["O", "O"], ["O", "B-MUSIC"]]
    for task in ("token_classification", None):
        with pytest.raises(DataError, match="sentence 0 has the word 1 at position 0: words must be non-empty strings"):
            adapt(_missing_model(tmp_path), list(zip(words, tags)), task=task)


def test_tag_unseen_in_training(runs, tmp_path):
    new = {"tokens": [["the", "pizza"], ["good", "band"]], "ner_tags": [["O", "B-FOOD"], ["O", "B-BAND"]]}
    message = r"the eval set has tag 'B-BAND' in sentence 1 \('good band'\), which the training set never had"
    with pytest.raises(DataError, match=message):  # refused before the model loads
        adapt(_missing_model(tmp_path), toy_ner(8, seed=0), eval_dataset=new, task="token_classification")
    result, _, _ = runs("bert", "token_classification", "lora")
    with pytest.raises(DataError, match=message):
        result.evaluate(new)


def test_causal_lm_text_too_short_for_one_block(tiny_models):
    with pytest.raises(DataError, match=r"too little text for one block of max_length=32 tokens.*lower max_length"):
        adapt(tiny_models["gpt2"], ["good music", "the band"], task="causal_lm", max_length=32)


def test_conll_line_with_one_column(tmp_path):
    path = tmp_path / "train.conll"
    path.write_text("-DOCSTART- O\n\nthe O\npizza B-FOOD\nmusic\n\ngood O\n", encoding="utf-8")
    for task in ("token_classification", None):
        with pytest.raises(DataError, match=r"line 5 \('music'\) has one column"):
            adapt(_missing_model(tmp_path), str(path), task=task)


@pytest.mark.parametrize("kind,task,family", [("cnn", "token_classification", "timm"),
                                              ("gpt2", "token_classification", "decoder"),
                                              ("bert", "causal_lm", "encoder"), ("cnn", "causal_lm", "timm")])
def test_family_without_the_head(kind, task, family, tiny_models):
    data = toy_ner(8, seed=0) if task == "token_classification" else toy_lm_texts(8, seed=0)
    head = get_task(task).head
    with pytest.raises(ModelNotFoundError, match=f"task {task!r} needs a model with a {head} head.*is an? {family} "
                                                 "model, which has none here. Use a model of"):
        adapt(tiny_models[kind], data, task=task)


def test_predict_on_causal_lm_points_to_generate(runs):
    result, _, _ = runs("gpt2", "causal_lm", "lora")
    with pytest.raises(ConfigError, match=r"use result.generate\(prompt\)"):
        result.predict(["the team"])


def test_generate_on_classifiers_points_to_predict(runs, tiny_models):
    single = adapt(tiny_models["bert"], testing.toy_texts(4), strategy="full", max_steps=1, epochs=1,
                   progress_bar=False)
    ner, _, _ = runs("bert", "token_classification", "lora")
    for result in (single, ner):
        with pytest.raises(ConfigError, match=rf"adapted for {result.task!r}: use predict\(\)"):
            result.generate("the team")


@pytest.mark.parametrize("strategy", ["linear-probe", "contrastive"])
@pytest.mark.parametrize("task", ["token_classification", "causal_lm"])
def test_head_solving_strategies_refused_before_loading(task, strategy, tmp_path):
    data = toy_ner(8, seed=0) if task == "token_classification" else toy_lm_texts(8, seed=0)
    with pytest.raises(StrategyError, match=rf"strategy {strategy!r} solves a linear head.*task {task!r} has no "
                                            r"such head\. Use strategy='lora'"):
        adapt(_missing_model(tmp_path), data, task=task, strategy=strategy)


# --- which task, read from the data ---------------------------------------------------------------------------
QUICK = dict(strategy="full", max_steps=2, epochs=1, batch_size=8, max_length=32, progress_bar=False)


@pytest.mark.parametrize("form", ["dict", "conll"])
def test_token_classification_detected(form, tiny_models, tmp_path):
    data = toy_ner(10, seed=2)
    source = data if form == "dict" else str(to_conll(data, tmp_path / "train.conll"))
    result = adapt(tiny_models["bert"], source, **QUICK)
    assert result.task == "token_classification"
    found = {t for tags in data["ner_tags"] for t in tags}
    assert result.labels == ["O"] + sorted(found - {"O"})
    assert result.model.config.id2label == dict(enumerate(result.labels))


def test_multi_label_still_detected(tiny_models):
    result = adapt(tiny_models["bert"], testing.toy_texts(4, multi_label=True), **QUICK)
    assert result.task == "multi_label"


def test_forms_read_as_their_task():
    """Without task=: word lists with tag lists are token classification in every form; texts with label lists
    are multi-label; texts with one label are single-label. ClassLabel tag ids are read as their names, in order."""
    import datasets

    data = toy_ner(6, seed=3)
    names = ["B-FOOD", "B-MUSIC", "B-SPORT", "I-FOOD", "I-MUSIC", "I-SPORT", "O"]  # "O" last, as some datasets do
    features = datasets.Features({"tokens": datasets.Sequence(datasets.Value("string")),
                                  "ner_tags": datasets.Sequence(datasets.ClassLabel(names=names))})
    ids = [[names.index(t) for t in tags] for tags in data["ner_tags"]]
    dataset = datasets.Dataset.from_dict({"tokens": data["tokens"], "ner_tags": ids}, features=features)
    for form in (data, list(zip(data["tokens"], data["ner_tags"])), dataset):
        task, examples = read_for(form, None, None, None)
        assert task.name == "token_classification"
        assert examples.raw_labels == data["ner_tags"] and [list(w) for w in examples.inputs] == data["tokens"]
    assert task.build_labels(examples) == names
    assert read_for(testing.toy_texts(2, multi_label=True), None, None, None)[0].name == "multi_label"
    assert read_for(testing.toy_texts(2), None, None, None)[0].name == "single_label"
