"""``python -m transferkit``: the same command as ``transferkit`` (and what ``accelerate launch -m transferkit`` runs)."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
