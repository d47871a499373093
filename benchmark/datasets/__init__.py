"""Datasets: the registry plus every registered loader (imported for their registration)."""
from importlib import import_module

from .registry import DATASETS, load_dataset, register_dataset

for _mod in ("avsynth", "avdigits", "ave", "vggss", "flickr", "music", "features", "esc50"):
    import_module(f"{__name__}.{_mod}")

__all__ = ["DATASETS", "load_dataset", "register_dataset"]
