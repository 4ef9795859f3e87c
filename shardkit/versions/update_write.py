"""The new shards of an update: the pack's engine (:mod:`shardkit.write.engines`: local processes or
Dask tasks) → :class:`ShardSetWriter`, numbered after the parent's shards, in the new version's
vocabulary."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from shardkit.format import ShardEntry
from shardkit.ingest.sources import Reject, SourceItem
from shardkit.write.engines import Engine, engine_results, make_context
from shardkit.write.options import PackOptions
from shardkit.write.shardset_writer import ShardSetWriter

log = logging.getLogger(__name__)


@dataclass
class Written:
    """The shards an update wrote: their manifest entries, each packed source's keys, stored frames, and
    the sources that could not be packed."""

    entries: list[ShardEntry] = field(default_factory=list)
    keys: dict[str, list[str]] = field(default_factory=dict)
    frames: int = 0
    rejects: list[Reject] = field(default_factory=list)


def write_new_shards(items: list[SourceItem], out: Path, opts: PackOptions, vocabulary: list[str], first: int,
                     engine: Engine, device: str, progress: Callable[[int, int], None] | None) -> Written:
    """Decode ``items`` with ``engine`` and write them (in their order) into shards ``first``,
    ``first + 1``, … of ``out``."""
    done = Written()
    if not items:
        return done
    codec = opts.make_codec()
    writer = ShardSetWriter(out, codec=codec, shard_size=opts.shard_size, vocabulary=vocabulary,
                            layout=opts.layout, device=device, first_shard=first)
    ctx = make_context(opts, codec, vocabulary, device)
    try:
        with engine_results(engine, items, 0, ctx, out) as results:
            for n, (i, result) in enumerate(results, start=1):
                if isinstance(result, Reject):
                    log.warning("reject %s: %s", result.file, result.reason)
                    done.rejects.append(result)
                else:
                    for sample in result:
                        writer.add(sample)
                        done.frames += sample.frames
                        done.keys.setdefault(items[i].rel, []).append(sample.key)
                if progress is not None:
                    progress(n, len(items))
        writer.close_shard()
    except BaseException:
        writer.abort()
        raise
    done.entries = [ShardEntry.from_dict(s) for s in writer.state.shards]
    return done
