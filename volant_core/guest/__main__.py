"""``python -m volant_core.guest [CACHE_DIR]``: build (or find) the guest artifacts, print their paths."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .image import ensure_guest


def default_cache_dir() -> Path:
    """``$VOLANT_GUEST_CACHE``, else ``~/.cache/volant/guest``."""
    configured = os.environ.get("VOLANT_GUEST_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "volant" / "guest"


def main(argv: list[str] | None = None) -> int:
    """Build the artifacts and print ``kernel``, ``initramfs`` and ``key`` lines."""
    parser = argparse.ArgumentParser(prog="python -m volant_core.guest", description=__doc__)
    parser.add_argument("cache_dir", nargs="?", type=Path, default=default_cache_dir())
    args = parser.parse_args(argv)
    artifacts = ensure_guest(args.cache_dir, log=lambda line: print(line, file=sys.stderr))
    print(f"kernel={artifacts.kernel}\ninitramfs={artifacts.initramfs}\nkey={artifacts.key}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
