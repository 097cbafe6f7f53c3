"""GPT-2 as a sequence classifier: the decoder's last-token state feeds a new head (transformers'
GPT2ForSequenceClassification; the pad token GPT-2 lacks is set for you), trained with LoRA.

Run:    python recipes/gpt2_classification.py          ("gpt2" from the Hugging Face Hub, 124M parameters)
Check:  python recipes/gpt2_classification.py --smoke  (transferkit.testing.tiny_gpt2 on toy texts, seconds)
"""
from tweets import test_tweets, train_tweets
from transferkit.recipe import run

settings = dict(
    model="gpt2",                 # or "distilgpt2", "gpt2-medium", a local folder
    data=train_tweets,
    test_data=test_tweets,
    strategy={"name": "lora", "rank": 8},   # LoRA on the attention and MLP layers of every block
    epochs=3,
    learning_rate=1e-3,
    batch_size=16,
    max_length=64,
    output_dir="out/gpt2-tweet-sentiment",
    overwrite=True,
    smoke={"model": "tiny_gpt2", "data": "texts"},
)

if __name__ == "__main__":
    run(settings)
