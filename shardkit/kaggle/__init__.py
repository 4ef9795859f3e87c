"""Shard sets as Kaggle datasets: lay out and check (:func:`prepare`), upload through the real
``kaggle`` client (:func:`publish`, ``pip install 'shardkit[kaggle]'``), find them in a notebook's
``/kaggle/input`` (:func:`locate`, also ``ShardDataset("kaggle://OWNER/SLUG")``), and gather wheels
for notebooks without internet (:func:`wheelhouse`). docs/kaggle.md describes both flows.

The reader knows nothing of Kaggle: ``shardkit/__init__.py`` registers ``kaggle://`` in the scheme table
of :mod:`shardkit.storage.location` and the missing-parent advice in :mod:`shardkit.read.lineage`, both
by ``"module:function"`` name, so this package is imported only when a ``kaggle://`` location is opened.

The ``kaggle`` client is imported only by :func:`publish`.
"""

from __future__ import annotations

from shardkit.kaggle.layout import METADATA_NAME, UploadFile, UploadPlan, prepare, published_name
from shardkit.kaggle.notebook import KaggleInput, locate
from shardkit.kaggle.publish import KaggleError, PublishResult, publish
from shardkit.kaggle.rules import LICENSES, MAX_BYTES, MAX_FILES
from shardkit.kaggle.wheels import EXCLUDED, Wheelhouse, wheelhouse

__all__ = [
    "EXCLUDED", "LICENSES", "MAX_BYTES", "MAX_FILES", "METADATA_NAME", "KaggleError", "KaggleInput", "PublishResult",
    "UploadFile", "UploadPlan", "Wheelhouse", "locate", "prepare", "publish", "published_name", "wheelhouse",
]
