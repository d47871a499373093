"""Baselines: encoders, objectives and the registered models (imported for registration)."""
from importlib import import_module

from .registry import MODELS, build_model, model_info, register_model

for _mod in ("random_projection", "zoo"):
    import_module(f"{__name__}.{_mod}")

__all__ = ["MODELS", "build_model", "model_info", "register_model"]
