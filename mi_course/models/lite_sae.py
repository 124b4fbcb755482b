"""The lite SAEs (roles ``sae``, ``sae-b``, ``sae-relu`` ...): a course SAE from its shipped config and weights.

``config.json`` is ``{"kind": "sae", "sae": <SparseAutoencoder.config()>}``; the SAE comes back with its
``hook_name`` (where in the lite ``lm`` it reads), in eval mode. Trained by ``scripts/train_saes.py``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from mi_course.models.lite import builder


@builder("sae")
def lite_sae(config: dict, state: dict[str, torch.Tensor], folder: Path, **kwargs):
    from mi_course.saes import sae_from_config

    if kwargs:
        raise TypeError(f"a lite SAE takes no loading options, got {sorted(kwargs)}")
    return sae_from_config(config["sae"], state).eval()
