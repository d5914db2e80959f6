"""Engine microbenchmarks, the same as `ownrun bench`. Usage: python benchmarks/micro.py [--quick]"""
import sys

from ownrun.apps.bench.micro import main

if __name__ == "__main__":
    sys.exit(main(quick="--quick" in sys.argv[1:]))
