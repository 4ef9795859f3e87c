"""Which items an epoch reads, in which order, with which crops: where the shuffle is decided.

Pure functions over numpy arrays (no I/O, no torch), the same on every platform and numpy version
(docs/determinism.md). By role:

- :mod:`~shardkit.dataset.order.keyed`: the keyed splitmix64 hash every random decision comes from;
- :mod:`~shardkit.dataset.order.shuffle`: the epoch order ``G`` (:func:`~.shuffle.epoch_order`) and its
  shuffle windows (:func:`~.shuffle.window_bounds`), both of one :class:`~.shuffle.OrderSpec`; which members
  a window reads ahead (:func:`~.shuffle.window_extents`);
- :mod:`~shardkit.dataset.order.crops`: where each crop of a recording starts;
- :mod:`~shardkit.dataset.order.grid`: ``crops="grid"``, every window of every sample in order;
- :mod:`~shardkit.dataset.order.sampling`: subsets, weighted draws and mixtures, drawn within the
  shuffle windows; :class:`~.sampling.EpochSampler`, what a dataset asks for an epoch's order.

How an epoch's order splits across ranks and DataLoader workers is :mod:`shardkit.dataset.plan`.
"""
