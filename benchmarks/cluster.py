"""The paper's cluster microbenchmarks, as `ownrun bench --suite cluster`. Usage: python benchmarks/cluster.py [--quick]"""
import sys

from ownrun.apps.bench.cluster import main

if __name__ == "__main__":
    sys.exit(main(quick="--quick" in sys.argv[1:]))
