"""``where=`` as text: a small, safe expression over a shard set's columns
(:func:`~shardkit.read.columns.sample_columns`), for the command line (``shardkit plan --where "rating >= 3"``)
and for anyone who would rather not write a lambda.

The language is Python's expression syntax restricted to column names, literals (numbers, strings, True/False,
lists or tuples of them), comparisons (``== != < <= > >=``, chained ones too, ``in``/``not in``) and ``and``,
``or``, ``not``; every comparison is elementwise over the columns. ``"call" in type`` asks a list column (tuples
of str) whether each row holds ``"call"``; ``primary_label in ["a", "b"]`` whether each row is one of them.
Nothing else is evaluated: no calls, attributes or subscripts.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from typing import Any

import numpy as np

from shardkit.errors import UsageError

Columns = dict[str, np.ndarray]

_COMPARE: dict[type, Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge,
}
_ALLOWED = (ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.Compare, ast.Name, ast.Load,
            ast.Constant, ast.List, ast.Tuple, ast.In, ast.NotIn, *_COMPARE)
_HELP = ("use column names, literals, comparisons (== != < <= > >= in, not in), and, or, not; "
         "e.g. 'rating >= 3 and primary_label != \"\"'")


def where_expression(text: str) -> Callable[[Columns], np.ndarray]:
    """The ``where=`` function of the expression ``text`` (module docstring): columns → bool (N,).

    Raises :class:`UsageError` for text that is not such an expression (at once), and for a column the set
    does not have (when called, naming the columns it has)."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise UsageError(f"where={text!r} is not an expression ({exc.msg}); {_HELP}") from None
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED) or (isinstance(node, ast.Constant) and not isinstance(
                node.value, str | int | float | bool)):
            raise UsageError(f"where={text!r}: {ast.unparse(node)!r} is not allowed; {_HELP}")

    def where(columns: Columns) -> np.ndarray:
        return np.asarray(_eval(tree.body, columns, text))

    where.__qualname__ = where.__name__ = f"where({text!r})"
    return where


def _eval(node: ast.AST, cols: Columns, text: str) -> Any:
    """The value of ``node`` over ``cols``: an array for a column or a comparison, a Python value for a literal."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.List | ast.Tuple):
        return [_eval(e, cols, text) for e in node.elts]
    if isinstance(node, ast.Name):
        if node.id not in cols:
            raise UsageError(f"where={text!r}: the set has no column {node.id!r}; it has {', '.join(sorted(cols))}")
        return cols[node.id]
    if isinstance(node, ast.UnaryOp):
        return ~np.asarray(_eval(node.operand, cols, text), dtype=bool)
    if isinstance(node, ast.BoolOp):
        parts = [np.asarray(_eval(v, cols, text), dtype=bool) for v in node.values]
        return np.logical_and.reduce(parts) if isinstance(node.op, ast.And) else np.logical_or.reduce(parts)
    assert isinstance(node, ast.Compare)
    left, out = _eval(node.left, cols, text), None
    for op, right_node in zip(node.ops, node.comparators):
        right = _eval(right_node, cols, text)
        try:
            res = _member(left, right, text) if isinstance(op, ast.In | ast.NotIn) else _COMPARE[type(op)](left, right)
        except (TypeError, ValueError) as exc:  # numpy: str column < number, ...
            raise UsageError(f"where={text!r}: {ast.unparse(node)!r} compares values of different types "
                             f"({type(exc).__name__}: {exc})") from None
        res = ~np.asarray(res, dtype=bool) if isinstance(op, ast.NotIn) else np.asarray(res)
        out = res if out is None else out & res
        left = right
    return out


def _member(left: Any, right: Any, text: str) -> np.ndarray:
    """``left in right``, row by row: a column in a list of literals, or a literal in a list column's tuples."""
    if isinstance(right, list):
        return np.isin(np.asarray(left), np.asarray(right))
    if isinstance(right, np.ndarray) and right.dtype == object and not isinstance(left, np.ndarray):
        return np.fromiter((left in row for row in right), dtype=bool, count=len(right))
    raise UsageError(f"where={text!r}: 'in' takes a column and a list ([...]), or a literal and a list column "
                     "(tuples of str, such as secondary_labels)")
