"""shardkit's benchmark: pack a corpus of real encoded audio and compare every way of reading it.

Run ``python -m benchmarks.run [--source DIR] [--quick] [--out DIR]``; see :mod:`benchmarks.run`.
"""
