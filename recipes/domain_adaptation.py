"""Domain adaptation of a decoder LM: SmolLM2-135M-Instruct keeps learning next tokens on order and shipping
support messages (task causal_lm, LoRA on every layer, the pretrained LM head kept), so it predicts such text
better (held-out perplexity against the base model's) and continues a prompt in its style.

Data: transferkit.testing.shipping_texts, offline and seeded: 400 messages to adapt on, 100 held out (another seed).
Run:    python recipes/domain_adaptation.py             (packaged SmolLM2, offline; 20 LoRA steps, 13 minutes on 2
                                                         busy CPU cores: held-out perplexity 47.3 -> 10.2)
        python recipes/domain_adaptation.py --adapter   (also save the LoRA adapter alone, in OUTPUT_DIR-adapter)
Check:  python recipes/domain_adaptation.py --smoke     (a tiny GPT-2 on a few messages, seconds)
Then:   transferkit generate out/shipping-lm "Order #48213 for 2 x wireless mouse" --max-new-tokens 40
The merged folder is a plain transformers AutoModelForCausalLM; the adapter folder loads with transferkit.load
or peft's PeftModel.from_pretrained(base_model, folder).
"""
import sys
import tempfile
from pathlib import Path

from transferkit.recipe import run

SMOLLM2 = "packaged:SmolLM2-135M-Instruct"
PROMPT = "Order #48213 for 2 x wireless mouse"
NEW_TOKENS = 24  # fits in smoke too: the tiny GPT-2's 64 positions hold the prompt (31 of its tokens) and these


def smollm2() -> str:
    """The packaged SmolLM2 name, or a one-line error naming another model where this transferkit lacks it."""
    from transferkit.assets import PACKAGED_MODELS
    from transferkit.errors import ModelNotFoundError

    if SMOLLM2 not in PACKAGED_MODELS:
        raise ModelNotFoundError(f"{SMOLLM2} is not packaged with this transferkit (it has {list(PACKAGED_MODELS)}): "
                                 "name another decoder LM, e.g. --model=HuggingFaceTB/SmolLM2-135M-Instruct (a Hub "
                                 "download) or --model=gpt2.")
    return SMOLLM2


def train_texts() -> list[str]:
    from transferkit.testing import shipping_texts

    return shipping_texts(400, seed=0)


def test_texts() -> list[str]:
    from transferkit.testing import shipping_texts

    return shipping_texts(100, seed=1)


settings = dict(
    model=smollm2,                    # a function: checked in a real run only; smoke swaps in a tiny GPT-2
    data=train_texts,
    test_data=test_texts,             # scored after training: perplexity, and the base model's on the same text
    task="causal_lm",
    strategy={"name": "lora", "rank": 8},
    epochs=1,
    learning_rate=1e-3,
    batch_size=8,
    max_length=128,                   # tokens per block: the texts are joined and cut into blocks this long
    output_dir="out/shipping-lm",     # saved merged (LoRA folded into the weights)
    overwrite=True,
    smoke={"model": "tiny_gpt2", "data": "texts"},
)


def show(result, output_dir: str | None, adapter: bool) -> None:
    metrics = result.evaluations[-1]["metrics"]
    base = metrics.get("base_perplexity")  # absent where the base model could not be loaded again (logged)
    print(f"\nheld-out perplexity {metrics['perplexity']:.2f}" + (f" (base model: {base:.2f})" if base else ""))
    print(f"prompt: {PROMPT}\ncontinuation: {result.generate(PROMPT, max_new_tokens=NEW_TOKENS)!r}")
    if not adapter:
        return
    if output_dir:
        result.save(f"{output_dir}-adapter", merge_lora=False, overwrite=True)
        print(f"saved adapter: {output_dir}-adapter")
        return
    with tempfile.TemporaryDirectory(prefix="transferkit-adapter-") as tmp:  # smoke, or no output_dir: not kept
        folder = result.save(Path(tmp) / "adapter", merge_lora=False)
        print(f"adapter (not kept): {', '.join(sorted(p.name for p in folder.iterdir()))}")


if __name__ == "__main__":
    argv = sys.argv[1:]
    outcome = run(settings, [a for a in argv if a != "--adapter"])
    if "--json" not in argv:  # JSON output stays one document
        show(outcome.result, outcome.output_dir, "--adapter" in argv)
