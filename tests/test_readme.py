"""The README's quickstart runs as written (on the real packaged weights, offline)."""
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.real
README = Path(__file__).resolve().parents[1] / "README.md"


def test_quickstart_runs(tmp_path, monkeypatch):
    text = README.read_text()
    section = text[text.index("## Quickstart"):]
    block = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(block, "README.md quickstart", "exec"), namespace)
    assert namespace["result"].evaluate(namespace["test"])["accuracy"] > 0.5  # 10 classes: chance is 0.1
    assert (tmp_path / "out" / "digits" / "transferkit.json").is_file()
    assert len(namespace["text_result"].predict(["fine"])) == 1


def _photos(root, seed):
    from transferkit import testing

    names = {"red": "car", "blue": "truck"}
    for i, (image, colour) in enumerate(testing.toy_images(12, size=64, seed=seed)):
        if colour in names:
            folder = root / names[colour]
            folder.mkdir(parents=True, exist_ok=True)
            image.save(folder / f"{i:03d}.png")


def _reviews(path, seed):
    import csv

    from transferkit import testing

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(testing.toy_texts(12, seed=seed))


def test_worked_example_runs_on_your_own_folder_and_csv(tmp_path):
    """The commands of "Your own data, end to end", as written, on generated photos and texts."""
    import json
    import os
    import subprocess
    import sys

    text = README.read_text()
    block = re.search(r"<!-- worked-example -->\n```bash\n(.*?)```", text, re.S).group(1)
    _photos(tmp_path / "my-photos" / "train", 0)
    _photos(tmp_path / "my-photos" / "test", 1)
    _reviews(tmp_path / "reviews" / "train.csv", 0)
    _reviews(tmp_path / "reviews" / "test.csv", 1)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    run = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=1200)
    assert run.returncode == 0, run.stderr[-3000:]
    assert (tmp_path / "out" / "vehicles" / "transferkit.json").is_file()
    assert (tmp_path / "out" / "vehicles" / "README.md").is_file()  # the model card
    predictions = json.loads((tmp_path / "predictions.json").read_text())
    assert len(predictions) == len(list((tmp_path / "my-photos" / "test" / "truck").iterdir()))
    assert sum(p["label"] == "truck" for p in predictions) >= len(predictions) * 0.75
    lines = run.stdout.splitlines()
    assert sum(line.startswith("accuracy") for line in lines) == 3  # adapt, adapt, evaluate
    assert lines[-1].startswith("arrived broken, nobody answered") and lines[-1].split()[-2] in ("negative", "positive")
