"""Maps the top-level folders engine/, cli/, apps/ and benchmarks/ to the import names
ownrun.engine, ownrun.cli, ownrun.apps and ownrun.benchmarks (DESIGN.md §8). Metadata lives in
pyproject.toml."""
from setuptools import find_packages, setup


def _package_dirs() -> dict[str, str]:
    dirs = {}
    for top in ("engine", "cli", "apps", "benchmarks"):
        for sub in [""] + ["." + p for p in find_packages(top)]:
            dirs[f"ownrun.{top}{sub}"] = top + sub.replace(".", "/")
    return dirs


PACKAGE_DIRS = _package_dirs()
setup(packages=list(PACKAGE_DIRS), package_dir=PACKAGE_DIRS)
