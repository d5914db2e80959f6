"""Benchmarks of the engine's public API (`ownrun bench`, benchmarks/micro.py).

Importing this package is cheap; `ownrun.apps.bench.micro` imports the engine.
"""
from pathlib import Path

DEFAULT_JSON = Path("bench-results/micro.json")
