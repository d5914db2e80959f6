"""ownrun's benchmarks (import as ownrun.benchmarks; the files live in the top-level
benchmarks/ folder, and each suite is also a script: `python benchmarks/micro.py`).

* `micro`: the engine's API microbenchmarks (`ownrun bench`).
* `cluster`: the ownership paper's cluster benchmarks (`ownrun bench --suite cluster`).
* `video`: the highest frame rate the video pipeline sustains.
* `compare`: the same benchmark bodies through ownrun, Ray and Dask, next to the machine's floors.
* `report`: rewrites the README's figures from the JSON committed under benchmarks/results/.
* `meta` (what every JSON file records about the run), `load` (background busy loops),
  `floors` (raw zmq and memcpy), `procs` (process-tree memory).

Importing this package is cheap; `micro`, `cluster`, `video` and `compare` import the engine.
"""
from pathlib import Path

DEFAULT_JSON = Path("bench-results/micro.json")  # where `ownrun bench` writes
RESULTS_DIR = Path(__file__).resolve().parent / "results"  # the committed results
