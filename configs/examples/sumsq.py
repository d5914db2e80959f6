"""The function behind configs/example-python.toml: a user's own code on ownrun.engine.

`sum_of_squares(n, chunk)` squares 0..n-1 in tasks of `chunk` numbers each and returns a
summary dict, which becomes the run's summary.json.
"""
import time

from ownrun import engine


@engine.remote
def _squares(start: int, stop: int) -> int:
    return sum(k * k for k in range(start, stop))


def sum_of_squares(n: int, chunk: int = 100) -> dict:
    t0 = time.perf_counter()
    refs = [_squares.remote(s, min(s + chunk, n)) for s in range(0, n, chunk)]
    total = sum(engine.get(refs, timeout=120))
    seconds = time.perf_counter() - t0
    assert total == (n - 1) * n * (2 * n - 1) // 6
    return {"n": n, "chunk": chunk, "tasks": len(refs), "total": total, "seconds": round(seconds, 4),
            "tasks_per_s": round(len(refs) / seconds, 1) if seconds > 0 else None}
