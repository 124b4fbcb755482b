"""Values that cross between the grading judge and the sandboxed subject: data only, never code.

A value becomes a JSON tree plus a dict of tensors; ``to_bytes`` packs both into one frame body (a JSON
document and a safetensors blob). Decoding parses JSON and safetensors, nothing else: no pickle, no
marshal, no eval, nothing that runs code on load, so a hostile payload can at worst be refused.

Kept exactly (the graded tests check ``isinstance`` and ``is``): None, bool, int (not bool), float
(nan and inf included), str, bytes, list, tuple (distinct from list), dict with str or int keys (tagged, so
int keys stay int), torch.Tensor (dtype, shape, ``requires_grad``; the same tensor twice stays one object).
Models cross *by role*: a module registered with :func:`register_role` (``load_role_model`` does it) is
sent as its role plus its state dict, and the other side rebuilds it with ``mi_course.load_model(role,
mode="lite", device="cpu")`` and ``load_state_dict``. mi_course's loaded models carry no role attribute, so
the judge keeps a weak registry of the modules it knows the role of.

TransformerLens objects (lesson 05's tiny test models): a ``HookedTransformer`` with no role crosses as its
config plus state dict, an ``ActivationCache`` as its tensors plus its model, a ``FactoredMatrix`` as A and B.
Decoding a model builds it, so the judge decodes the subject's replies with ``models=False``.

Anything else raises :class:`CodecError` on the sending side, unless ``opaque=True`` (the subject's replies):
then it becomes an :class:`Opaque` placeholder (type name and a short repr), so a learner's numpy float or
custom object fails the test's type checks instead of being coerced into a passing value.

:class:`CodecError` deliberately derives from neither ValueError nor NotImplementedError: an
infrastructure failure must never satisfy ``expect_value_error`` or read as "not started".
"""

from __future__ import annotations

import base64
import dataclasses
import json
import math
import struct
import sys
import weakref
from dataclasses import dataclass
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

TAG = "$"
HEADER = struct.Struct(">II")  # JSON length, safetensors blob length (the frame header is 8 bytes)
REPR_CHARS = 200
# Exceptions the judge re-raises as the same built-in class (by the nearest of them in the learner's class's
# MRO). MemoryError is left out on purpose: in the subject it means "hit RLIMIT_AS", an infrastructure limit.
ALLOWED_EXCEPTIONS = ("ValueError", "TypeError", "NotImplementedError", "KeyError", "IndexError", "RuntimeError",
                      "AssertionError", "AttributeError", "ZeroDivisionError", "ArithmeticError", "OverflowError")


class CodecError(Exception):
    """A value cannot be encoded or a payload cannot be decoded (type, size or shape of the data)."""


@dataclass(frozen=True)
class Limits:
    """What a decoder accepts: total frame bytes, nesting depth, JSON nodes, tensors."""

    max_bytes: int = 256 * 2**20
    max_depth: int = 64
    max_items: int = 1_000_000
    max_tensors: int = 10_000


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class Opaque:
    """A value the subject returned that has no codec: only its type name and a short repr cross."""

    type_name: str
    text: str

    def __repr__(self) -> str:
        return f"<opaque {self.type_name}: {self.text}>"


_ROLES: "weakref.WeakKeyDictionary[torch.nn.Module, str]" = weakref.WeakKeyDictionary()


def register_role(model: torch.nn.Module, role: str) -> torch.nn.Module:
    """Remember that ``model`` is mi_course's model ``role`` (so it can cross as role + state dict)."""
    _ROLES[model] = role
    return model


def role_of(model: Any) -> str | None:
    """The registered role of ``model``, or None."""
    from mi_course.models.registry import lite_role_of

    try:
        role = _ROLES.get(model)
    except TypeError:  # not weak-referenceable
        return None
    return role if role is not None else lite_role_of(model)


def load_role_model(role: str) -> torch.nn.Module:
    """``mi_course.load_model(role, mode="lite", device="cpu")``, registered by role."""
    from mi_course.models import load_model

    return register_role(load_model(role, mode="lite", device="cpu"), role)


# ------------------------------------------------------------------------------------------ encoding


class _Encoder:
    """One encoding pass: tensors are collected by identity, so aliasing survives the trip."""

    def __init__(self, opaque: bool) -> None:
        self.opaque = opaque
        self.tensors: dict[str, torch.Tensor] = {}
        self.keys: dict[int, str] = {}  # id(tensor or model) -> key
        self.sources: dict[str, torch.Tensor] = {}  # key -> the original tensor (for write-back)

    def tensor(self, value: torch.Tensor) -> dict:
        key = self.keys.get(id(value))
        if key is None:
            key = f"t{len(self.keys)}"
            self.keys[id(value)] = key
            self.sources[key] = value
            self.tensors[key] = value.detach().to("cpu").contiguous().clone()  # own storage: safetensors refuses shared
        return {TAG: "tensor", "key": key, "grad": bool(value.requires_grad)}

    def model(self, value: torch.nn.Module, recipe: dict) -> dict:
        """A module as its recipe (``{"role": ...}`` or ``{"cfg": ...}``) plus its state dict."""
        key = self.keys.get(id(value))
        if key is None:
            key = f"m{len(self.keys)}"
            self.keys[id(value)] = key
            for name, t in value.state_dict().items():
                self.tensors[f"{key}.{name}"] = t.detach().to("cpu").contiguous().clone()
        frozen = [n for n, p in value.named_parameters() if not p.requires_grad]
        return {TAG: "model", "key": key, **recipe, "training": bool(value.training), "frozen": frozen}

    def hooked_config(self, cfg: Any) -> dict:
        """A HookedTransformerConfig's fields (its dtype by name)."""
        fields = {}
        for f in dataclasses.fields(cfg):
            v = getattr(cfg, f.name)
            if isinstance(v, torch.dtype):
                v = str(v).removeprefix("torch.")
            elif type(v).__module__ == "numpy" and hasattr(v, "item"):  # e.g. initializer_range, via np.sqrt
                v = v.item()
            fields[f.name] = v
        return self.encode(fields)

    def lens(self, value: Any) -> dict | None:
        """TransformerLens objects (None if ``value`` is none of them)."""
        if (cls := _tl("ActivationCache")) is not None and type(value) is cls:
            keys = list(value.cache_dict)
            return {TAG: "cache", "keys": keys, "values": [self.encode(value.cache_dict[k]) for k in keys],
                    "model": self.encode(value.model), "batch": bool(value.has_batch_dim)}
        if (cls := _tl("FactoredMatrix")) is not None and type(value) is cls:
            return {TAG: "factored", "A": self.encode(value.A), "B": self.encode(value.B)}
        if (cls := _tl("HookedTransformer")) is not None and type(value) is cls:
            return self.model(value, {"cfg": self.hooked_config(value.cfg)})
        return None

    def encode(self, value: Any) -> Any:
        kind = type(value)
        if value is None or kind in (bool, int, str):
            return value
        if kind is float:
            return value if math.isfinite(value) else {TAG: "float", "v": repr(value)}
        if kind is list:
            return [self.encode(v) for v in value]
        if kind is tuple:
            return {TAG: "tuple", "items": [self.encode(v) for v in value]}
        if kind is dict:
            return self.mapping(value)
        if kind is bytes:
            return {TAG: "bytes", "b64": base64.b64encode(value).decode("ascii")}
        if isinstance(value, torch.Tensor) and kind in (torch.Tensor, torch.nn.Parameter):
            return self.tensor(value)
        if isinstance(value, torch.nn.Module) and (role := role_of(value)) is not None:
            return self.model(value, {"role": role})
        if (node := self.lens(value)) is not None:
            return node
        return self.refuse(value)

    def mapping(self, value: dict) -> dict:
        keys = []
        for k in value:
            if type(k) not in (str, int):
                return self.refuse(value, f"a dict key of type {type(k).__name__}")
            keys.append(k)
        return {TAG: "dict", "keys": keys, "values": [self.encode(v) for v in value.values()]}

    def refuse(self, value: Any, what: str | None = None) -> dict:
        name = f"{type(value).__module__}.{type(value).__qualname__}"
        if self.opaque:
            try:
                text = repr(value)[:REPR_CHARS]
            except Exception:  # noqa: BLE001 - a learner's __repr__ may raise anything
                text = "<repr failed>"
            return {TAG: "opaque", "type": name, "text": text}
        raise CodecError(f"cannot send {what or 'a value of type ' + name} to the subject (no codec; models "
                         f"cross only by role: see mi_course.grading.codec.register_role)")


def encode(value: Any, *, opaque: bool = False) -> tuple[Any, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(JSON tree, tensors by key, original tensors by key) of ``value``."""
    enc = _Encoder(opaque)
    tree = enc.encode(value)
    return tree, enc.tensors, enc.sources


# ------------------------------------------------------------------------------------------ decoding


class _Decoder:
    """One decoding pass over a JSON tree with its tensors; counts nodes and depth against the limits."""

    def __init__(self, tensors: dict[str, torch.Tensor], limits: Limits, models: bool = True) -> None:
        self.tensors = tensors
        self.limits = limits
        self.models = models
        self.items = 0
        self.objects: dict[str, Any] = {}  # key -> decoded tensor or model (shared by identity)

    def decode(self, node: Any, depth: int = 0) -> Any:
        self.items += 1
        if self.items > self.limits.max_items or depth > self.limits.max_depth:
            raise CodecError("payload too large or too deeply nested")
        if node is None or type(node) in (bool, int, str, float):
            return node
        if type(node) is list:
            return [self.decode(v, depth + 1) for v in node]
        if type(node) is not dict or not isinstance(node.get(TAG), str):
            raise CodecError(f"malformed payload node of type {type(node).__name__}")
        return self.tagged(node, depth)

    def tagged(self, node: dict, depth: int) -> Any:
        tag = node[TAG]
        if tag == "tuple":
            return tuple(self.decode(v, depth + 1) for v in _list(node, "items"))
        if tag == "dict":
            keys, values = _list(node, "keys"), _list(node, "values")
            if len(keys) != len(values) or any(type(k) not in (str, int) for k in keys):
                raise CodecError("malformed dict node")
            return {k: self.decode(v, depth + 1) for k, v in zip(keys, values)}
        if tag == "float":
            if node.get("v") not in ("nan", "inf", "-inf"):
                raise CodecError("malformed float node")
            return float(node["v"])
        if tag == "bytes":
            try:
                return base64.b64decode(node["b64"], validate=True)
            except Exception as err:  # noqa: BLE001 - binascii.Error is a ValueError: never let it out
                raise CodecError(f"malformed bytes node: {err}") from None
        if tag == "tensor":
            return self.tensor(node)
        if tag == "model":
            return self.model(node, depth)
        if tag == "cache":
            return self.cache(node, depth)
        if tag == "factored":
            from transformer_lens import FactoredMatrix

            a, b = self.decode(node.get("A"), depth + 1), self.decode(node.get("B"), depth + 1)
            if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
                raise CodecError("malformed FactoredMatrix node")
            return _build(FactoredMatrix, a, b)
        if tag == "opaque":
            return Opaque(str(node.get("type"))[:REPR_CHARS], str(node.get("text"))[:REPR_CHARS])
        raise CodecError(f"unknown payload tag {tag!r}")

    def tensor(self, node: dict) -> torch.Tensor:
        key = node.get("key")
        if key in self.objects:
            return self.objects[key]
        if not isinstance(key, str) or key not in self.tensors:
            raise CodecError(f"payload refers to a missing tensor {key!r}")
        t = self.tensors[key]
        if node.get("grad") is True:
            if not (t.is_floating_point() or t.is_complex()):
                raise CodecError("requires_grad on a tensor that is not floating point")
            t.requires_grad_(True)
        self.objects[key] = t
        return t

    def model(self, node: dict, depth: int) -> torch.nn.Module:
        key, role = node.get("key"), node.get("role")
        if key in self.objects:
            return self.objects[key]
        if not self.models:
            raise CodecError("this side does not accept models")
        if not isinstance(key, str) or not (isinstance(role, str) or "cfg" in node):
            raise CodecError("malformed model node")
        prefix = key + "."
        state = {k[len(prefix):]: v for k, v in self.tensors.items() if k.startswith(prefix)}
        cfg = None if isinstance(role, str) else self.decode(node["cfg"], depth + 1)
        what = repr(role) if isinstance(role, str) else "HookedTransformer"
        try:
            model = load_role_model(role) if isinstance(role, str) else _hooked_transformer(cfg)
            model.load_state_dict(state, strict=True)
        except Exception as err:  # noqa: BLE001 - an unknown role or a bad state: an infrastructure error
            raise CodecError(f"cannot rebuild the model {what}: {type(err).__name__}: {err}") from None
        frozen = set(node.get("frozen") or [])
        for name, p in model.named_parameters():
            p.requires_grad_(name not in frozen)
        model.train(bool(node.get("training")))
        self.objects[key] = model
        return model

    def cache(self, node: dict, depth: int) -> Any:
        from transformer_lens import ActivationCache

        keys, values = _list(node, "keys"), _list(node, "values")
        if len(keys) != len(values) or any(type(k) is not str for k in keys):
            raise CodecError("malformed ActivationCache node")
        tensors = [self.decode(v, depth + 1) for v in values]
        if not all(isinstance(t, torch.Tensor) for t in tensors):
            raise CodecError("an ActivationCache holds tensors only")
        model = self.decode(node.get("model"), depth + 1)
        return _build(ActivationCache, dict(zip(keys, tensors)), model, has_batch_dim=bool(node.get("batch", True)))


def _tl(name: str) -> Any:
    """transformer_lens's class ``name`` if transformer_lens is imported (no value can be one otherwise)."""
    module = sys.modules.get("transformer_lens")
    return getattr(module, name, None) if module is not None else None


def _build(cls: type, *args: Any, **kwargs: Any) -> Any:
    """``cls(*args, **kwargs)``, any failure (a constructor's ValueError, say) turned into a CodecError."""
    try:
        return cls(*args, **kwargs)
    except Exception as err:  # noqa: BLE001
        raise CodecError(f"cannot rebuild a {cls.__name__}: {type(err).__name__}: {err}") from None


def _hooked_transformer(cfg: Any) -> torch.nn.Module:
    """A HookedTransformer from its config's fields (as encoded by ``_Encoder.hooked_config``)."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    names = {f.name for f in dataclasses.fields(HookedTransformerConfig)}
    if type(cfg) is not dict or not set(cfg) <= names:
        raise CodecError("malformed HookedTransformer config")
    fields = dict(cfg)
    dtype = getattr(torch, str(fields.get("dtype", "float32")), None)
    if not isinstance(dtype, torch.dtype):
        raise CodecError(f"unknown dtype {fields.get('dtype')!r}")
    fields.update(dtype=dtype, device="cpu")
    return HookedTransformer(HookedTransformerConfig(**fields))


def _list(node: dict, field: str) -> list:
    value = node.get(field)
    if type(value) is not list:
        raise CodecError(f"malformed payload: {field!r} is not a list")
    return value


def decode(tree: Any, tensors: dict[str, torch.Tensor], limits: Limits = DEFAULT_LIMITS, *,
           models: bool = True) -> Any:
    """The value of a JSON tree with its tensors (see :func:`encode`). ``models=False`` refuses model nodes
    (building one runs the course's constructors with sizes from the payload: the judge does not accept them
    from a subject)."""
    if len(tensors) > limits.max_tensors:
        raise CodecError(f"payload has {len(tensors)} tensors, more than {limits.max_tensors}")
    return _Decoder(tensors, limits, models).decode(tree)


# ------------------------------------------------------------------------------------------ bytes


def pack(message: Any, tensors: dict[str, torch.Tensor]) -> bytes:
    """One frame: 8-byte header (JSON length, blob length), the JSON document, the safetensors blob."""
    doc = json.dumps(message, allow_nan=False, separators=(",", ":")).encode()
    blob = st_save(tensors) if tensors else b""
    return HEADER.pack(len(doc), len(blob)) + doc + blob


def unpack_header(header: bytes, limits: Limits = DEFAULT_LIMITS) -> tuple[int, int]:
    """(JSON length, blob length) of a frame header, refused beyond ``limits.max_bytes``."""
    if len(header) != HEADER.size:
        raise CodecError("truncated frame header")
    n_doc, n_blob = HEADER.unpack(header)
    if n_doc + n_blob > limits.max_bytes:
        raise CodecError(f"frame of {n_doc + n_blob} bytes is larger than {limits.max_bytes}")
    return n_doc, n_blob


def unpack_body(doc: bytes, blob: bytes, limits: Limits = DEFAULT_LIMITS) -> tuple[Any, dict[str, torch.Tensor]]:
    """The JSON message and the tensors of a frame body (no value decoding yet)."""
    if len(doc) + len(blob) > limits.max_bytes:
        raise CodecError(f"frame larger than {limits.max_bytes} bytes")
    try:
        message = json.loads(doc, parse_constant=_no_constant)
    except CodecError:
        raise
    except Exception as err:  # noqa: BLE001 - JSONDecodeError is a ValueError: never let it out
        raise CodecError(f"malformed JSON in frame: {err}") from None
    try:
        tensors = dict(st_load(blob)) if blob else {}
    except Exception as err:  # noqa: BLE001 - safetensors raises its own errors on bad data
        raise CodecError(f"malformed safetensors blob: {type(err).__name__}: {err}") from None
    return message, tensors


def _no_constant(name: str) -> Any:
    raise CodecError(f"JSON constant {name} is not allowed (non-finite floats are tagged)")


def unpack(frame: bytes, limits: Limits = DEFAULT_LIMITS) -> tuple[Any, dict[str, torch.Tensor]]:
    """The message and tensors of one whole frame (see :func:`pack`)."""
    n_doc, n_blob = unpack_header(frame[:HEADER.size], limits)
    if len(frame) != HEADER.size + n_doc + n_blob:
        raise CodecError("frame length does not match its header")
    body = frame[HEADER.size:]
    return unpack_body(body[:n_doc], body[n_doc:], limits)


def to_bytes(value: Any, *, opaque: bool = False) -> bytes:
    """A value as one frame (``{"value": tree}`` plus its tensors)."""
    tree, tensors, _ = encode(value, opaque=opaque)
    return pack({"value": tree}, tensors)


def from_bytes(frame: bytes, limits: Limits = DEFAULT_LIMITS, *, models: bool = True) -> Any:
    """The value of a frame made by :func:`to_bytes`."""
    message, tensors = unpack(frame, limits)
    if type(message) is not dict or "value" not in message:
        raise CodecError("frame holds no value")
    return decode(message["value"], tensors, limits, models=models)
