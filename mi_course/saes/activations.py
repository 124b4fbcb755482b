"""Activations for SAEs: read them from any TransformerLens model at any hook, store them in bounded memory,
and serve shuffled batches; and run the model with an activation replaced (what the metrics splice in).

Every TransformerLens call of the package is in this module.

    store = ActivationStore.from_model(model, tokens, "blocks.2.hook_resid_pre")   # tokens [rows, pos]
    for x in store.batches(4096, seed=0): ...                                      # [4096, d_in] float32
    logits = logits_with_replacement(model, tokens, "blocks.2.hook_resid_pre", sae)

Memory. The store keeps float16 (half of float32; activations of the course's models stay far inside its
range) in memory up to ``max_memory_bytes`` (default 2 GiB, :data:`DEFAULT_MAX_MEMORY_BYTES`) and past
that writes a float16 file in ``directory`` (default: a temporary folder, removed with the store). Batches
come from a shuffling buffer: all of an in-memory store, or for a file, random contiguous chunks of it
read into a buffer of ``max_memory_bytes`` and shuffled there.

Positions. Course rows start with BOS, whose residual is unlike any other token's (much larger in GPT-2);
``drop_bos=True`` (the default) leaves position 0 out of the store, and the metrics leave it unreplaced.
A hook with more than one dimension after ``pos`` (``hook_z``: [batch, pos, head, d_head]) is flattened,
the layout of SAELens's ``hook_z`` SAEs.
"""

from __future__ import annotations

import math
import re
import shutil
import tempfile
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from jaxtyping import Float, Int
from tqdm.auto import tqdm

DEFAULT_MAX_MEMORY_BYTES = 2 * 1024 ** 3
DISK_CHUNK_TOKENS = 8192  # contiguous rows read at once from a file-backed store


# ---------------------------------------------------------------------------------------------- the model


def check_hook(model, hook_name: str) -> None:
    if not isinstance(hook_name, str) or hook_name not in model.hook_dict:
        examples = [n for n in model.hook_dict if n.endswith(("hook_resid_pre", "hook_resid_post"))][:4]
        raise ValueError(f"{hook_name!r} is not a hook of this model; hooks look like {', '.join(examples)}")


def _check_tokens(model, tokens) -> Int[torch.Tensor, "rows pos"]:
    if not isinstance(tokens, torch.Tensor) or tokens.dim() != 2 or tokens.dtype not in (torch.long, torch.int):
        shape = tuple(tokens.shape) if isinstance(tokens, torch.Tensor) else type(tokens).__name__
        raise ValueError(f"tokens must be an integer tensor [rows, pos] (for example from "
                         f"mi_course.organisms.tokenizer.pack_documents), got {shape}")
    if len(tokens) == 0:
        raise ValueError("tokens has no rows")
    if tokens.shape[1] > model.cfg.n_ctx:
        raise ValueError(f"rows of {tokens.shape[1]} tokens exceed the model's context of {model.cfg.n_ctx}")
    return tokens.long()


def _stop_at_layer(model, hook_name: str) -> int | None:
    """Run only the blocks up to the hook's (``blocks.3.…`` needs blocks 0-3); None runs the whole model."""
    match = re.match(r"blocks\.(\d+)\.", hook_name)
    return int(match.group(1)) + 1 if match and int(match.group(1)) + 1 < model.cfg.n_layers else None


def hook_activations(model, tokens: Int[torch.Tensor, "rows pos"], hook_name: str, batch_rows: int = 32,
                     drop_bos: bool = True, progress: bool = True) -> Iterator[Float[torch.Tensor, "n d_in"]]:
    """The activations at ``hook_name``, ``batch_rows`` rows of ``tokens`` at a time, each batch flattened to
    [rows * positions, d_in] (positions 1.. with ``drop_bos``), with a progress bar."""
    check_hook(model, hook_name)
    tokens = _check_tokens(model, tokens)
    stop = _stop_at_layer(model, hook_name)
    starts = range(0, len(tokens), batch_rows)
    with torch.no_grad():
        for start in tqdm(starts, desc=f"activations at {hook_name}", disable=not progress, leave=False):
            batch = tokens[start:start + batch_rows].to(model.cfg.device)
            _, cache = model.run_with_cache(batch, names_filter=hook_name, stop_at_layer=stop,
                                            return_cache_object=False)
            act = cache[hook_name][:, int(drop_bos):]
            yield act.reshape(act.shape[0] * act.shape[1], -1)


def logits_with_replacement(model, tokens: Int[torch.Tensor, "batch pos"], hook_name: str,
                            replace: Callable[[torch.Tensor], torch.Tensor] | None,
                            first_position: int = 1) -> Float[torch.Tensor, "batch pos d_vocab"]:
    """The model's logits with the activation at ``hook_name`` replaced, from ``first_position`` on, by
    ``replace(act)`` (``act`` flattened to [batch, pos, d_in]; an SAE works as ``replace``). ``replace=None``
    runs the clean model. The hook is removed afterwards, even if ``replace`` raises."""
    check_hook(model, hook_name)
    tokens = _check_tokens(model, tokens).to(model.cfg.device)
    if replace is None:
        with torch.no_grad():
            return model(tokens)

    def hook(act, hook):
        part = act[:, first_position:]
        new = replace(part.reshape(*part.shape[:2], -1))
        if not isinstance(new, torch.Tensor) or new.numel() != part.numel():
            raise ValueError(f"the replacement at {hook_name} must return the activation's shape "
                             f"{tuple(part.shape[:2])} + (d_in,), got "
                             f"{tuple(new.shape) if isinstance(new, torch.Tensor) else type(new).__name__}")
        act = act.clone()
        act[:, first_position:] = new.reshape(part.shape).to(act.dtype)
        return act

    with torch.no_grad(), model.hooks(fwd_hooks=[(hook_name, hook)]):
        return model(tokens)


# ---------------------------------------------------------------------------------------------- the store


class ActivationStore:
    """``n_tokens`` activation vectors of width ``d_in``, filled by :meth:`append`, in float16 by default: in
    memory up to ``max_memory_bytes``, in a file past that (see the module's docstring)."""

    def __init__(self, n_tokens: int, d_in: int, dtype: torch.dtype = torch.float16,
                 max_memory_bytes: int = DEFAULT_MAX_MEMORY_BYTES, directory: str | Path | None = None,
                 hook_name: str | None = None):
        if n_tokens < 1 or d_in < 1:
            raise ValueError(f"a store needs n_tokens >= 1 and d_in >= 1, got {n_tokens} and {d_in}")
        self.d_in, self.dtype, self.hook_name = d_in, dtype, hook_name
        self.max_memory_bytes = int(max_memory_bytes)
        self.n_filled = 0
        self.path: Path | None = None
        nbytes = n_tokens * d_in * torch.finfo(dtype).bits // 8
        if nbytes <= self.max_memory_bytes:
            self._data = torch.empty(n_tokens, d_in, dtype=dtype)
        else:
            if dtype != torch.float16:
                raise ValueError(f"a store past max_memory_bytes ({nbytes:,} bytes) spills to disk in float16 only")
            folder = Path(tempfile.mkdtemp(prefix="mi_course_acts_", dir=directory))
            self.path = folder / "activations.f16"
            array = np.memmap(self.path, dtype=np.float16, mode="w+", shape=(n_tokens, d_in))
            self._data = torch.from_numpy(array)
            weakref.finalize(self, shutil.rmtree, folder, True)

    @property
    def on_disk(self) -> bool:
        return self.path is not None

    @property
    def capacity(self) -> int:
        return self._data.shape[0]

    def __len__(self) -> int:
        return self.n_filled

    def __repr__(self) -> str:
        where = f"file {self.path}" if self.on_disk else "memory"
        return f"ActivationStore({self.n_filled:,} x {self.d_in}, {self.dtype}, {where}, hook {self.hook_name!r})"

    def append(self, batch: Float[torch.Tensor, "n d_in"]) -> None:
        if batch.dim() != 2 or batch.shape[1] != self.d_in:
            raise ValueError(f"append takes [n, d_in={self.d_in}], got {tuple(batch.shape)}")
        end = self.n_filled + len(batch)
        if end > self.capacity:
            raise ValueError(f"the store holds {self.capacity:,} tokens; appending {len(batch):,} to "
                             f"{self.n_filled:,} would overflow it")
        self._data[self.n_filled:end] = batch.detach().to("cpu", self.dtype)
        self.n_filled = end

    def rows(self, start: int = 0, stop: int | None = None) -> Float[torch.Tensor, "n d_in"]:
        """Rows ``start:stop`` (contiguous, fast from a file too), as float32."""
        stop = self.n_filled if stop is None else min(stop, self.n_filled)
        return self._data[start:stop].float()

    def __getitem__(self, index) -> torch.Tensor:
        if isinstance(index, slice):
            return self.rows(*index.indices(self.n_filled)[:2])
        return self._data[: self.n_filled][index].float()

    def sample(self, n: int, generator: torch.Generator) -> Float[torch.Tensor, "n d_in"]:
        """``n`` random rows (without replacement, read in order), as float32."""
        index = torch.randperm(self.n_filled, generator=generator)[: min(n, self.n_filled)].sort().values
        return self[index]

    # ------------------------------------------------------------------------------------------ batches

    def _buffers(self, buffer_tokens: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
        """One epoch as buffers to shuffle: the whole store in memory, or random chunks of the file."""
        if not self.on_disk and buffer_tokens >= self.n_filled:
            yield self._data[: self.n_filled]
            return
        chunk = min(DISK_CHUNK_TOKENS, buffer_tokens)
        starts = torch.arange(0, self.n_filled, chunk)[torch.randperm(math.ceil(self.n_filled / chunk),
                                                                      generator=generator)]
        per_buffer = max(1, buffer_tokens // chunk)
        for group in starts.split(per_buffer):
            yield torch.cat([self._data[s:min(s + chunk, self.n_filled)] for s in group.tolist()])

    def batches(self, batch_size: int, seed: int = 0, generator: torch.Generator | None = None,
                buffer_tokens: int | None = None, device=None) -> Iterator[Float[torch.Tensor, "batch d_in"]]:
        """Shuffled batches [batch_size, d_in] (float32, on ``device``), endlessly: epoch after epoch, every
        row once per epoch. Deterministic in ``seed`` (or ``generator``)."""
        if not isinstance(batch_size, int) or not 1 <= batch_size <= self.n_filled:
            raise ValueError(f"batch_size must be an int in 1..{self.n_filled} (the tokens stored), got {batch_size!r}")
        generator = generator if generator is not None else torch.Generator().manual_seed(seed)
        if buffer_tokens is None:
            row_bytes = self.d_in * torch.finfo(self.dtype).bits // 8
            buffer_tokens = self.n_filled if not self.on_disk else max(batch_size, self.max_memory_bytes // row_bytes)
        leftover = self._data[:0]
        while True:
            for buffer in self._buffers(buffer_tokens, generator):
                order = torch.randperm(len(buffer), generator=generator)
                start = 0
                if len(leftover):
                    need = batch_size - len(leftover)
                    if need > len(order):
                        leftover = torch.cat([leftover, buffer[order]])
                        continue
                    yield torch.cat([leftover, buffer[order[:need]]]).to(device=device, dtype=torch.float32)
                    start = need
                while start + batch_size <= len(order):
                    yield buffer[order[start:start + batch_size]].to(device=device, dtype=torch.float32)
                    start += batch_size
                leftover = buffer[order[start:]]

    # ------------------------------------------------------------------------------------------ builders

    @classmethod
    def from_tensor(cls, activations: Float[torch.Tensor, "n d_in"], dtype: torch.dtype | None = None,
                    hook_name: str | None = None, **kwargs) -> "ActivationStore":
        """A store holding ``activations`` (kept as they are when ``dtype`` is None or theirs)."""
        if not isinstance(activations, torch.Tensor) or activations.dim() != 2:
            shape = tuple(activations.shape) if isinstance(activations, torch.Tensor) else type(activations).__name__
            raise ValueError(f"activations must be a tensor [n_tokens, d_in], got {shape}")
        dtype = activations.dtype if dtype is None else dtype
        store = cls(len(activations), activations.shape[1], dtype=dtype, hook_name=hook_name, **kwargs)
        if not store.on_disk and dtype == activations.dtype and activations.device.type == "cpu":
            store._data = activations.detach()
            store.n_filled = len(activations)
        else:
            store.append(activations)
        return store

    @classmethod
    def from_model(cls, model, tokens: Int[torch.Tensor, "rows pos"], hook_name: str, batch_rows: int = 32,
                   drop_bos: bool = True, dtype: torch.dtype = torch.float16,
                   max_memory_bytes: int = DEFAULT_MAX_MEMORY_BYTES, directory: str | Path | None = None,
                   progress: bool = True) -> "ActivationStore":
        """The activations of ``model`` at ``hook_name`` on every row of ``tokens`` (see :func:`hook_activations`)."""
        tokens = _check_tokens(model, tokens)
        per_row = tokens.shape[1] - int(drop_bos)
        if per_row < 1:
            raise ValueError("rows need at least one position after BOS")
        store = None
        for batch in hook_activations(model, tokens, hook_name, batch_rows, drop_bos, progress):
            if store is None:
                store = cls(len(tokens) * per_row, batch.shape[1], dtype=dtype, max_memory_bytes=max_memory_bytes,
                            directory=directory, hook_name=hook_name)
            store.append(batch)
        return store


def as_store(activations) -> ActivationStore:
    """An :class:`ActivationStore` as it is, or a tensor [n_tokens, d_in] wrapped in one."""
    if isinstance(activations, ActivationStore):
        if len(activations) == 0:
            raise ValueError("the activation store is empty")
        return activations
    return ActivationStore.from_tensor(activations)


__all__ = ["ActivationStore", "DEFAULT_MAX_MEMORY_BYTES", "as_store", "check_hook", "hook_activations",
           "logits_with_replacement"]
