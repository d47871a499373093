"""The engine of avcl-bench: runner, results store, datasets, reporting and the command line."""
