"""LatBench: the domain core of Eagle (search spaces, graphs, models, timing protocol, data, store)."""

__version__ = "0.1.0"
