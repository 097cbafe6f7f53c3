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
