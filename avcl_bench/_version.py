"""The suite's version (one source: read by pyproject.toml and stamped into provenance)."""

__version__ = "0.2.0"
