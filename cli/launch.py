"""The ``shardkit`` console script. The commands need the ``[cli]`` extra (click, rich); the script is
installed without it, so it checks for them first and prints an install hint instead of a traceback.

Kept free of click, rich and heavy imports so that the check itself cannot fail.
"""

from __future__ import annotations

import sys

HINT = "shardkit: the command line needs click and rich: pip install 'shardkit[cli]'"
#: what the ``[cli]`` extra installs
CLI_EXTRA = ("click", "rich")


def main() -> None:
    """Run :func:`shardkit_cli.main.main`, or print :data:`HINT` and exit 1 without click or rich."""
    try:
        import click  # noqa: F401
        import rich  # noqa: F401
    except ImportError as exc:
        if exc.name not in CLI_EXTRA:  # click or rich is there but broken: show what broke
            raise
        print(HINT, file=sys.stderr)
        sys.exit(1)
    from shardkit_cli.main import main as run

    run()


if __name__ == "__main__":
    main()
