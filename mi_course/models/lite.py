"""Builders for the lite model organisms: a shipped config + state dict -> a model.

``config.json`` has a ``kind`` that picks the builder; the rest of the config is the builder's. A new kind
of organism registers its builder with :func:`builder` in its own module, named in ``KIND_MODULES`` so
that it is imported only when such a checkpoint is loaded.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

BUILDERS: dict[str, Callable[..., Any]] = {}
KIND_MODULES = {
    "hooked_transformer_tokenized": "mi_course.models.lite_tokenized",
    "cnn": "mi_course.models.lite_vision",
    "sae": "mi_course.models.lite_sae",
}


def builder(kind: str):
    def register(fn):
        BUILDERS[kind] = fn
        return fn

    return register


def build(config: dict, state: dict[str, torch.Tensor], folder: Path, **kwargs) -> Any:
    kind = config.get("kind")
    if kind not in BUILDERS and kind in KIND_MODULES:
        importlib.import_module(KIND_MODULES[kind])
    if kind not in BUILDERS:
        raise ValueError(f"checkpoint config has kind {kind!r}; known kinds: {', '.join(BUILDERS)}")
    return BUILDERS[kind](config, state, folder, **kwargs)


@builder("hooked_transformer")
def hooked_transformer(config: dict, state: dict[str, torch.Tensor], folder: Path, **kwargs):
    """A TransformerLens HookedTransformer from its config dict (``cfg``) and weights."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    model = HookedTransformer(HookedTransformerConfig(**config["cfg"]), **kwargs)
    missing, unexpected = model.load_state_dict(state, strict=False)
    # TransformerLens keeps some derived buffers (masks, rotary tables) that need not be shipped
    missing = [k for k in missing if not k.endswith(("mask", "IGNORE", "rotary_sin", "rotary_cos"))]
    if missing or unexpected:
        raise ValueError(f"checkpoint does not match its config: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return model
