"""Batch assembly, the hot path of :class:`~shardkit.dataset.ShardDataset`: items in, one batch dict out.

- :mod:`~shardkit.dataset.assemble.reader`: :class:`~.reader.BatchReader`, each item's crop and byte range,
  read through the shard set's storage straight into the batch rows; read errors and the batch dict;
- :mod:`~shardkit.dataset.assemble.members`: the path of a codec whose crops are not byte ranges of frames
  (whole members read, then decoded into the rows);
- :mod:`~shardkit.dataset.assemble.tensors`: the batch's tensors (shared memory in DataLoader workers), its
  size limit and its own type for torch's collate;
- :mod:`~shardkit.dataset.assemble.readahead`: :class:`~.readahead.ReadAhead`, the storage told which
  members come next, a shuffle window ahead.

Which items a batch holds is decided before (:mod:`shardkit.dataset.order`, :mod:`shardkit.dataset.plan`);
CRC checks of what was read are :mod:`shardkit.dataset.crc`, labels :mod:`shardkit.dataset.labels`.
"""
