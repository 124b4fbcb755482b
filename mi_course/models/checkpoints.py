"""Shipped files and their sha256: every checkpoint is verified before it is loaded.

``mi_course/checkpoints/MANIFEST.json`` maps a path (relative to that folder) to its sha256 and size.
Weights are safetensors; configs and model cards are JSON. A file whose hash differs is refused.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from mi_course.paths import checkpoint_dir

MANIFEST_NAME = "MANIFEST.json"


class ChecksumError(RuntimeError):
    """A file's sha256 differs from the manifest: it is corrupt, truncated or was replaced."""


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_manifest(folder: Path | None = None) -> dict[str, dict]:
    path = Path(folder or checkpoint_dir()) / MANIFEST_NAME
    return json.loads(path.read_text()) if path.exists() else {}


def write_manifest(folder: Path | None = None, only: str | None = None) -> dict[str, dict]:
    """Hash the files under ``folder`` (except the manifest) into the manifest. With ``only`` (a role), only
    that role's entries are refreshed, so a training script never hashes another script's half-written file."""
    folder = Path(folder or checkpoint_dir())
    scope = folder / only if only else folder
    entries = {k: v for k, v in read_manifest(folder).items() if only and not k.startswith(f"{only}/")}
    entries.update({
        p.relative_to(folder).as_posix(): {"sha256": sha256(p), "bytes": p.stat().st_size}
        for p in sorted(scope.rglob("*"))
        if p.is_file() and p.name != MANIFEST_NAME and "__pycache__" not in p.parts
    })
    entries = dict(sorted(entries.items()))
    (folder / MANIFEST_NAME).write_text(json.dumps(entries, indent=2, sort_keys=True) + "\n")
    return entries


def verified_path(relative: str, folder: Path | None = None) -> Path:
    """The path of a shipped file after checking it against the manifest."""
    folder = Path(folder or checkpoint_dir())
    entry = read_manifest(folder).get(relative)
    path = folder / relative
    if entry is None:
        raise ChecksumError(f"{relative} is not in {folder / MANIFEST_NAME}; refusing to load an unlisted file "
                            "(after training, run `python scripts/update_manifest.py`)")
    if not path.exists():
        raise FileNotFoundError(f"{path} is listed in the manifest but missing: reinstall or re-clone the course")
    actual = sha256(path)
    if actual != entry["sha256"]:
        raise ChecksumError(f"{path} has sha256 {actual[:12]}..., the manifest says {entry['sha256'][:12]}...: "
                            "the file is corrupt or was replaced. Re-clone the course or retrain it with its "
                            "script and update the manifest.")
    return path


def load_json(relative: str, folder: Path | None = None) -> dict:
    return json.loads(verified_path(relative, folder).read_text())


def load_state_dict(relative: str, folder: Path | None = None) -> dict[str, torch.Tensor]:
    """A verified state dict from a ``.safetensors`` file, or a ``.pt`` file read with weights_only."""
    path = verified_path(relative, folder)
    if path.suffix == ".safetensors":
        return load_file(str(path))
    return torch.load(path, map_location="cpu", weights_only=True)


def write_checkpoint(folder: Path, config: dict, state: dict[str, torch.Tensor], card: dict,
                     extras: dict[str, object] | None = None, manifest: bool = True) -> None:
    """Write a lite organism's folder: config.json, model.safetensors, any extra JSON files (e.g. metrics) and
    card.json; then, for a folder among the shipped checkpoints, refresh that role's manifest entries."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    save_state_dict(state, folder / "model.safetensors")
    for name, data in (extras or {}).items():
        (folder / name).write_text(json.dumps(data, indent=1) + "\n")
    (folder / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    print(f"wrote {folder}", flush=True)
    if manifest and folder.resolve().parent == checkpoint_dir().resolve():
        for path, entry in write_manifest(only=folder.name).items():
            if path.startswith(f"{folder.name}/"):
                print(f"{entry['sha256'][:12]}  {entry['bytes']:>10,}  {path}")


def save_state_dict(state: dict[str, torch.Tensor], path: Path) -> None:
    """Save weights as safetensors (contiguous copies, shared storage broken)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous().clone() for k, v in state.items()}, str(path))
    Path(path).chmod(0o644)  # safetensors writes owner-only files; shipped files are world-readable


def regenerate_command(script: str, argv: list[str] | None = None, drop: tuple[str, ...] = ()) -> str:
    """The card's "regenerate" line: ``python <script> <the arguments used>``, without where it was written
    (``--out``, ``--no-manifest``), so that a learner reproduces the shipped checkpoint in place. ``drop`` names
    further options with a value that change how a run got there but not its result (e.g. a resume folder)."""
    import shlex
    import sys

    with_value = ("--out", *drop)
    kept, skip = [], False
    for a in sys.argv[1:] if argv is None else list(argv):
        if skip:
            skip = False
        elif a in with_value:
            skip = True
        elif not (a.startswith(tuple(f"{o}=" for o in with_value)) or a == "--no-manifest"):
            kept.append(a)
    return " ".join(["python", script, *map(shlex.quote, kept)])


def regenerate_script(card: dict):
    """``(module, argv)``: the training script that a card's "regenerate" line runs, loaded from the checkout's
    ``scripts/`` (not run), and that line's arguments, e.g. to read them with the script's own parser."""
    import importlib.util
    import shlex

    from mi_course.paths import repo_root

    words = shlex.split(card["regenerate"])
    if words[:1] != ["python"] or len(words) < 2 or not words[1].startswith("scripts/"):
        raise ValueError(f"expected a regenerate line 'python scripts/<name>.py ...', got {card['regenerate']!r}")
    path = repo_root() / words[1]
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, words[2:]
