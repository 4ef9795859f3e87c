"""detect_topology: explicit arguments, then torch.distributed, then RANK/WORLD_SIZE."""

import pytest

from shardkit.dataset.topology import Topology, detect_topology
from shardkit.errors import UsageError


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)


def test_defaults_to_a_single_process():
    assert detect_topology() == Topology(0, 1, 0, 1)


def test_explicit_arguments_win(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert detect_topology(2, 3) == Topology(2, 3, 0, 1)


def test_environment(monkeypatch):
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert detect_topology() == Topology(3, 4, 0, 1)


@pytest.mark.parametrize("args", [(3, 3), (-1, 2), (0, 0), (1, None), (None, 2)])
def test_invalid_arguments(args):
    with pytest.raises(UsageError):
        detect_topology(*args)


@pytest.mark.parametrize("env", [{"RANK": "4", "WORLD_SIZE": "4"}, {"RANK": "1"}, {"WORLD_SIZE": "two"}])
def test_invalid_environment(monkeypatch, env):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(UsageError):
        detect_topology()
