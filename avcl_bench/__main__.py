"""``python -m avcl_bench``: the same command line as ``avcl-bench`` and ``run_benchmark.py``."""
import sys

from avcl_bench.benchmark.cli import main

if __name__ == "__main__":
    sys.exit(main())
