"""Make ``tests/read_fixtures.py`` importable as ``read_fixtures`` (tests/ has no __init__.py)."""

import sys
from pathlib import Path

_TESTS = str(Path(__file__).resolve().parents[2])
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)
