"""The 0.2 name of :mod:`shardkit.read.topology`."""

from shardkit.read.topology import Topology, detect_topology

__all__ = ["Topology", "detect_topology"]
