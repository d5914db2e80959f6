"""Maps the top-level folders engine/, cli/ and apps/ to the import names ownrun.engine,
ownrun.cli and ownrun.apps (DESIGN.md §8). Metadata lives in pyproject.toml."""
from setuptools import find_packages, setup


def _package_dirs() -> dict[str, str]:
    dirs = {}
    for top in ("engine", "cli", "apps"):
        for sub in [""] + ["." + p for p in find_packages(top)]:
            dirs[f"ownrun.{top}{sub}"] = top + sub.replace(".", "/")
    return dirs


PACKAGE_DIRS = _package_dirs()
setup(packages=list(PACKAGE_DIRS), package_dir=PACKAGE_DIRS)
