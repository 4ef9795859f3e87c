"""The package version, defined once: pyproject.toml reads it, ``shardkit.__version__`` and the manifest's
``shardkit_version`` import it."""

__version__ = "0.2.0"
