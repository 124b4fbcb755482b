"""The ``hooked_transformer_tokenized`` builder: a lite HookedTransformer that ships its own tokenizer.

A checkpoint folder ``mi_course/checkpoints/<role>/`` of this kind holds, all listed in the sha256 manifest:

    config.json        {"kind": "hooked_transformer_tokenized", "cfg": {...HookedTransformerConfig...},
                        "tokenizer": "tokenizer.json"}          # "tokenizer" is optional, that is the default
    model.safetensors  the weights
    tokenizer.json     written by mi_course.organisms.tokenizer.save_tokenizer
    card.json

``cfg`` must have ``d_vocab`` equal to the tokenizer's size and no ``tokenizer_name`` (the tokenizer comes
from the folder, not from the Hugging Face hub); see :mod:`mi_course.organisms.tokenizer` for the bos settings.
"""

from __future__ import annotations

from pathlib import Path

import torch

from mi_course.models import checkpoints
from mi_course.models.lite import builder, hooked_transformer
from mi_course.paths import checkpoint_dir

KIND = "hooked_transformer_tokenized"
DEFAULT_TOKENIZER_FILE = "tokenizer.json"


def _manifest_location(folder: Path) -> tuple[Path, str]:
    """The manifest folder and the checkpoint folder's path relative to it."""
    folder = Path(folder)
    try:
        return checkpoint_dir(), folder.resolve().relative_to(checkpoint_dir().resolve()).as_posix()
    except ValueError:
        return folder.parent, folder.name


def verified_tokenizer(folder: Path, name: str = DEFAULT_TOKENIZER_FILE):
    """The tokenizer shipped in a checkpoint folder, after checking its sha256 against the manifest."""
    from mi_course.organisms.tokenizer import load_tokenizer

    root, relative = _manifest_location(folder)
    return load_tokenizer(checkpoints.verified_path(f"{relative}/{name}", root))


@builder(KIND)
def hooked_transformer_tokenized(config: dict, state: dict[str, torch.Tensor], folder: Path, **kwargs):
    """A TransformerLens HookedTransformer from ``cfg`` and weights, with the folder's word-level tokenizer."""
    if config["cfg"].get("tokenizer_name"):
        raise ValueError(f"{KIND} checkpoints ship their tokenizer; remove cfg.tokenizer_name "
                         f"({config['cfg']['tokenizer_name']!r}) from config.json")
    tokenizer = verified_tokenizer(folder, config.get("tokenizer", DEFAULT_TOKENIZER_FILE))
    d_vocab = config["cfg"].get("d_vocab", -1)
    if d_vocab not in (-1, len(tokenizer)):
        raise ValueError(f"cfg.d_vocab is {d_vocab} but the shipped tokenizer has {len(tokenizer)} tokens")
    return hooked_transformer(config, state, folder, tokenizer=tokenizer, **kwargs)
