"""``python -m shardkit_cli``: the same as the ``shardkit`` console script."""

from shardkit_cli.launch import main

main()
