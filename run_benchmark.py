#!/usr/bin/env python
"""avcl-bench entry point: ``python run_benchmark.py [command] [options]`` (see ``--help``)."""
import sys

from avcl_bench.benchmark.cli import main

if __name__ == "__main__":
    sys.exit(main())
