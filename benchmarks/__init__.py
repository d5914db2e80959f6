"""ownrun's benchmarks (import as ownrun.benchmarks; the files live in the top-level
benchmarks/ folder, and each suite is also a script: `python benchmarks/micro.py`).

* `micro`: the engine's API microbenchmarks (`ownrun bench`).
* `cluster`: the ownership paper's cluster benchmarks (`ownrun bench --suite cluster`).
* `video`: the highest frame rate the video pipeline sustains.
* `compare`: the same benchmark bodies through ownrun, Ray and Dask, next to the machine's floors.
* `rl`: the RL app (ES to CartPole's 475 as a command, tiny tasks next to Ray, OSDI'18 Table 4,
  the noise table); its task bodies are `rl_bodies`, which runs in Ray's venv too.
* `report`: rewrites the README's figures from the JSON committed under benchmarks/results/.
* `meta` (what every JSON file records about the run), `load` (background busy loops),
  `floors` (raw zmq and memcpy), `procs` (process-tree memory).

Importing this package is cheap; `micro`, `cluster`, `video` and `compare` import the engine
(`rl` only in its child processes).
"""
from pathlib import Path

DEFAULT_JSON = Path("bench-results/micro.json")  # where `ownrun bench` writes


def _results_dir() -> Path:
    """The committed results: `benchmarks/results` of the checkout the command runs in (an
    installed ownrun is not a checkout), else the folder beside this package."""
    checkout = Path.cwd() / "benchmarks" / "results"
    return checkout if checkout.is_dir() else Path(__file__).resolve().parent / "results"


RESULTS_DIR = _results_dir()
