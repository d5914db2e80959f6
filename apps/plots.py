"""The apps' overlay figures (one line per run): two panels side by side, one legend below.

`two_panels(runs)` makes the figure (taller as the legend grows), `save(fig, legend_from, out)`
puts the legend of `legend_from`'s lines under both panels and writes the PNG. Used by the
video app's latency CDFs and the RL app's learning curves (and the job reports that overlay
their runs). matplotlib with the Agg backend (no display). Not thread-safe (pyplot's state).
"""
from __future__ import annotations

import math
from pathlib import Path


def two_panels(runs: int):
    """(figure, (left axes, right axes)) for `runs` lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, 2, figsize=(12, 4.5 + 0.25 * math.ceil(runs / 2)))


def save(fig, legend_from, out_png: Path) -> Path:
    import matplotlib.pyplot as plt

    handles, labels = legend_from.get_legend_handles_labels()
    rows = math.ceil(len(labels) / 2)
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, min(0.5, 0.02 + 0.045 * rows), 1, 1))
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=120)
    plt.close(fig)
    return out_png
