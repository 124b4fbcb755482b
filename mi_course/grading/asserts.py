"""Assertions for graded tests, with messages that tell a learner what to look at."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


def assert_tensor(value: Any, what: str) -> torch.Tensor:
    assert isinstance(value, torch.Tensor), f"{what} should be a torch.Tensor, got {type(value).__name__}"
    return value


def assert_shape(value: Any, shape: tuple, what: str) -> torch.Tensor:
    """``shape`` may hold None for a dimension that can be anything."""
    t = assert_tensor(value, what)
    ok = t.dim() == len(shape) and all(s is None or s == d for s, d in zip(shape, t.shape))
    want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
    assert ok, f"{what} should have shape {want}, got {tuple(t.shape)}"
    return t


def assert_finite(value: torch.Tensor, what: str) -> torch.Tensor:
    t = assert_tensor(value, what)
    if t.is_floating_point() and not torch.isfinite(t).all():
        bad = "NaN" if torch.isnan(t).any() else "inf"
        raise AssertionError(f"{what} contains {bad}: look for a division by zero, a log of 0 or an overflow")
    return t


def assert_close(actual: Any, expected: torch.Tensor, what: str, atol: float = 1e-5, rtol: float = 1e-4,
                 hint: str = "") -> None:
    actual = assert_shape(actual, tuple(expected.shape), what)
    assert_finite(actual, what)
    actual = actual.detach().to(expected.device, expected.dtype)
    if not torch.allclose(actual, expected, atol=atol, rtol=rtol):
        err = (actual - expected).abs().max().item()
        raise AssertionError(f"{what} is wrong (largest difference {err:.3g}). {hint}".strip())


def _clone(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, (list, tuple)):
        return type(value)(_clone(v) for v in value)
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    return value


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor):
        return a.shape == b.shape and torch.equal(a.detach(), b)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return True


def call_unmutated(fn: Callable, *args, **kwargs) -> Any:
    """Call ``fn`` and fail if it changed any of its tensor arguments in place."""
    before_args, before_kwargs = _clone(args), _clone(kwargs)
    out = fn(*args, **kwargs)
    for i, (a, b) in enumerate(zip(args, before_args)):
        assert _same(a, b), f"argument {i + 1} was changed in place: work on a copy or use out-of-place ops"
    for k in kwargs:
        assert _same(kwargs[k], before_kwargs[k]), f"argument {k!r} was changed in place: work on a copy"
    return out


def expect_value_error(fn: Callable, *args, what: str, expected: str = "", **kwargs) -> str:
    """``fn(*args, **kwargs)`` must raise a ValueError (not another error, not nothing); returns its message.

    ``what`` names the call and ``expected`` says what a valid argument is, for the learner. An untouched
    stub's NotImplementedError passes through, so it is reported as "not started"."""
    want = f"{what} should raise a ValueError" + (f" ({expected})" if expected else "")
    try:
        fn(*args, **kwargs)
    except ValueError as err:
        return str(err)
    except NotImplementedError:
        raise
    except Exception as err:  # noqa: BLE001 - any other error is the learner's bug, reported as such
        raise AssertionError(f"{want}, got {type(err).__name__}: {err}") from None
    raise AssertionError(f"{want}; it returned without an error")
