"""Seed the demo data: the same as `outbound demo seed [--reset] [--smtp-port N] [--json]`.

python scripts/seed_demo.py --reset --smtp-port 2525
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.cli.main import app


def main() -> None:
    """Run `outbound demo seed` with this script's arguments."""
    app(["demo", "seed", *sys.argv[1:]], prog_name="seed_demo.py")


if __name__ == "__main__":
    main()
