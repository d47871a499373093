"""Table 1 of the survey as package data (``avcl_bench.surveyed_data``), read with importlib.resources."""
