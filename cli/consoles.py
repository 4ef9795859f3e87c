"""The command line's two consoles, shared by every command module. Markup is off: what they print
comes from the library and the user's data (file names, labels, paths, ``pip install 'shardkit[plot]'``),
where brackets are text; the few styled words are :class:`rich.text.Text` (:func:`styled`)."""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

console = Console(soft_wrap=True, markup=False)
err = Console(stderr=True, soft_wrap=True, markup=False)


def styled(word: str, style: str, rest: str = "") -> Text:
    """``word`` in ``style`` followed by ``rest`` as plain text (brackets and all)."""
    return Text.assemble((word, style), rest)
