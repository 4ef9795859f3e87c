"""labels.map_classes and labels.multi_hot as pure functions over label columns."""

import logging

import numpy as np
import pytest

from shardkit.dataset.labels import map_classes, multi_hot
from shardkit.errors import UsageError

VOCAB = ["a", "b", "c"]
LABEL = np.array([0, 2, -1, 1], dtype=np.int32)                 # primary labels of 4 samples
SEC_PTR = np.array([0, 2, 2, 3, 3], dtype=np.int64)             # sample 0: b, c; sample 2: a
SEC_IDX = np.array([1, 2, 0], dtype=np.int32)


def test_vocabulary_is_the_default():
    classes, class_of = map_classes(VOCAB, LABEL, SEC_IDX, None)
    assert classes == VOCAB and class_of.tolist() == [0, 1, 2]


def test_narrower_classes_warn_what_they_drop(caplog):
    with caplog.at_level(logging.WARNING):
        classes, class_of = map_classes(VOCAB, LABEL, SEC_IDX, ["c", "a"], "/set")
    assert classes == ["c", "a"] and class_of.tolist() == [1, -1, 0]
    assert "/set: 1 label(s)" in caplog.text and "1 primary labels" in caplog.text and "1 secondary" in caplog.text


def test_duplicate_classes_are_an_error():
    with pytest.raises(UsageError, match="duplicate"):
        map_classes(VOCAB, LABEL, SEC_IDX, ["a", "a"])


def test_multi_hot_primary_and_weighted_secondary():
    out = np.full((4, 3), 7.0, dtype=np.float32)
    samples = np.array([0, 1, 2, 3, 0], dtype=np.int64)[:4]
    multi_hot(samples, LABEL, SEC_PTR, SEC_IDX, np.arange(3), 0.5, out)
    assert out.tolist() == [[1.0, 0.5, 0.5], [0, 0, 1.0], [0.5, 0, 0], [0, 1.0, 0]]


def test_multi_hot_with_a_class_map_and_no_secondary_weight():
    out = np.empty((2, 2), dtype=np.float32)
    class_of = np.array([1, -1, 0])  # classes ["c", "a"]
    multi_hot(np.array([0, 2]), LABEL, SEC_PTR, SEC_IDX, class_of, 0.0, out)
    assert out.tolist() == [[0, 1.0], [0, 0]]
    multi_hot(np.array([0, 2]), LABEL, SEC_PTR, SEC_IDX, class_of, 1.0, out)
    assert out.tolist() == [[1.0, 1.0], [0, 1.0]]


def test_multi_hot_without_classes():
    out = np.empty((3, 0), dtype=np.float32)
    multi_hot(np.array([0, 1, 2]), LABEL, SEC_PTR, SEC_IDX, np.full(3, -1), 1.0, out)
    assert out.shape == (3, 0)
