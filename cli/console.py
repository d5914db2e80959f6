"""The one Rich console every `ownrun` command writes through (no bare `print`).

Rich resolves `sys.stdout` at print time, so test runners that swap stdout capture it.
"""
from rich.console import Console

console = Console(highlight=False)
