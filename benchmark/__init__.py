"""avcl-bench: an open benchmark suite for deep audio-visual correlation learning."""

__version__ = "0.1.0"
