"""Graded tests for lesson 09 (sparse autoencoders).

Expected values come from a different route than the reference solution: hand-derived numbers on tiny
hand-made tensors, explicit loops over rows and features, finite reasoning about gradients, and, for the CE
loss recovered, the course's canonical :func:`mi_course.saes.ce_loss_recovered` as an oracle (the
behaviour is compared, not the code). Tests of ``train_sae`` and ``sae_metrics`` use an SAE written here, so
each exercise is graded on its own.
"""

import inspect
import math
from functools import partial
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn

from mi_course.grading.asserts import assert_close, assert_shape, call_unmutated, expect_value_error
from mi_course.grading.judge import drive

LESSON = "l09_sparse_autoencoders"


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- independent references


class RefSAE(nn.Module):
    """A ReLU SAE written without the learner's SAE: y = ReLU((x - b_dec) W_enc + b_enc), x_hat = y W_dec + b_dec."""

    def __init__(self, d_in, d_sae, seed=0):
        super().__init__()
        g = gen(seed)
        w = torch.randn(d_sae, d_in, generator=g)
        w = w / w.norm(dim=1, keepdim=True)
        self.W_dec = nn.Parameter(w)
        self.W_enc = nn.Parameter(w.T.clone())
        self.b_enc = nn.Parameter(torch.zeros(d_sae))
        self.b_dec = nn.Parameter(torch.zeros(d_in))
        self.d_in, self.d_sae = d_in, d_sae

    def encode(self, x):
        return torch.clamp(torch.einsum("...i,if->...f", x - self.b_dec, self.W_enc) + self.b_enc, min=0)

    def decode(self, y):
        return torch.einsum("...f,fi->...i", y, self.W_dec) + self.b_dec


def loop_encode(W_enc, b_enc, b_dec, x):
    """One row and one feature at a time."""
    out = torch.zeros(len(x), W_enc.shape[1])
    for r in range(len(x)):
        for f in range(W_enc.shape[1]):
            out[r, f] = max(0.0, sum((x[r, i] - b_dec[i]).item() * W_enc[i, f].item()
                                     for i in range(len(b_dec))) + b_enc[f].item())
    return out


def expect_scalar(value: float, expected: float, named: dict[str, float], what: str) -> None:
    """Fail naming the mistake when ``value`` matches one of the ``named`` wrong values, else compare."""
    for mistake, wrong in named.items():
        if abs(value - wrong) < 1e-4:
            pytest.fail(f"{what} gave {value:.4f}, expected {expected:.4f}: {mistake}.")
    assert abs(value - expected) < 1e-5, f"{what} gave {value:.4f}, expected {expected:.4f}"


def set_params(sae, **params):
    with torch.no_grad():
        for name, value in params.items():
            getattr(sae, name).copy_(value)


def attached_hooks(model) -> list[str]:
    return [name for name, hp in model.hook_dict.items() if hp._forward_hooks or hp._backward_hooks]


# Drivers: they run next to the learner's code (in class grading, in the sandboxed subject) and return data
# only; every check on that data stays in the tests below.

PARAMETERS = ("W_enc", "W_dec", "b_enc", "b_dec")


def _sae_made(lesson, *args, **kwargs):
    """A fresh SAE(*args, **kwargs), as data."""
    sae = lesson.SAE(*args, **kwargs)
    params = {name: getattr(sae, name, None) for name in PARAMETERS}
    return {"params": {k: v.detach().clone() if isinstance(v, torch.Tensor) else v for k, v in params.items()},
            "is_parameter": {k: isinstance(v, nn.Parameter) for k, v in params.items()},
            "names": sorted(n for n, _ in sae.named_parameters()),
            "dims": (getattr(sae, "d_in", None), getattr(sae, "d_sae", None)),
            "data_ptr": [params[k].data_ptr() if isinstance(params[k], torch.Tensor) else None
                         for k in ("W_enc", "W_dec")]}


def _sae_method(lesson, sizes, params, method, arg):
    """sae.<method>(arg) of an SAE(*sizes) whose named parameters are set to ``params``."""
    sae = lesson.SAE(*sizes)
    set_params(sae, **params)
    return getattr(sae, method)(arg)


def _sae_forward_backward(lesson, sizes, params, x):
    """out = sae(x) of an SAE(*sizes) with ``params`` set, then out.sum().backward(): out, W_enc, b_enc, grads."""
    sae = lesson.SAE(*sizes)
    set_params(sae, **params)
    out = sae(x)
    if isinstance(out, torch.Tensor) and out.requires_grad:
        out.sum().backward()
    return {"out": out, "W_enc": sae.W_enc.detach().clone(), "b_enc": sae.b_enc.detach().clone(),
            "grads": {name: getattr(sae, name).grad for name in PARAMETERS}}


def _backward(lesson, name, args, grad_out=None):
    """out = lesson.<name>(*args) (a dotted name reaches into a class) and, when out is differentiable,
    out.backward(grad_out) (out.sum().backward() without grad_out): (out, the args' .grad)."""
    fn = lesson
    for part in name.split("."):
        fn = getattr(fn, part)
    out = fn(*args)
    if isinstance(out, torch.Tensor) and out.requires_grad:
        out.backward(grad_out) if grad_out is not None else out.sum().backward()
    return out, [a.grad if isinstance(a, torch.Tensor) else None for a in args]


# ---------------------------------------------------------------- SAE


@pytest.mark.exercise("SAE", points=1)
def test_sae_parameters_and_init(impl):
    sae = drive(impl, _sae_made, 5, 7, seed=3)
    params = sae["params"]
    for name, shape in (("W_enc", (5, 7)), ("W_dec", (7, 5)), ("b_enc", (7,)), ("b_dec", (5,))):
        value = params[name]
        assert sae["is_parameter"][name], f"sae.{name} should be an nn.Parameter"
        if name == "W_enc" and tuple(value.shape) == (7, 5):
            pytest.fail("sae.W_enc has shape [d_sae, d_in]: activations are rows, so x @ W_enc needs W_enc of "
                        "shape [d_in, d_sae] (and W_dec [d_sae, d_in]).")
        assert_shape(value, shape, f"sae.{name}")
    names = set(sae["names"])
    assert {"W_enc", "W_dec", "b_enc", "b_dec"} <= names, f"register all four parameters; found {sorted(names)}"
    assert sae["dims"] == (5, 7), "keep d_in and d_sae as attributes"
    assert torch.all(params["b_enc"] == 0) and torch.all(params["b_dec"] == 0), "both biases should start at zeros"
    norms = params["W_dec"].norm(dim=1)
    assert torch.allclose(norms, torch.ones(7), atol=1e-5), \
        f"each row of W_dec should start as a unit vector; norms {[round(v, 3) for v in norms.tolist()]}"
    assert torch.allclose(params["W_enc"], params["W_dec"].T), "W_enc should start as a copy of W_dec.T"
    W_enc_ptr, W_dec_ptr = sae["data_ptr"]
    assert W_enc_ptr != W_dec_ptr, "W_enc and W_dec must be separate tensors (clone)"
    again = drive(impl, _sae_made, 5, 7, seed=3)["params"]
    other = drive(impl, _sae_made, 5, 7, seed=4)["params"]
    assert torch.equal(again["W_dec"], params["W_dec"]), \
        "the same seed should give the same SAE: draw with torch.Generator().manual_seed(seed)"
    assert not torch.equal(other["W_dec"], params["W_dec"]), "another seed gave the same W_dec"
    for bad in ((0, 4), (4, -1), (2.5, 4)):
        expect_value_error(impl.SAE, *bad, what=f"SAE{bad}", expected="d_in and d_sae are positive ints")


@pytest.mark.exercise("SAE", points=2)
def test_sae_encode_matches_loop_and_names_the_mistake(impl):
    g = gen(0)
    d = 4  # square, so a transposed W_enc has the right shape and only the values tell
    W_enc = torch.randn(d, d, generator=g)
    b_enc = torch.tensor([0.3, -0.2, 0.1, -0.4])
    b_dec = torch.tensor([0.5, -1.0, 0.25, 2.0])
    encode = partial(drive, impl, _sae_method, (d, d), dict(W_enc=W_enc, b_enc=b_enc, b_dec=b_dec), "encode")
    x = torch.randn(6, d, generator=g)
    got = call_unmutated(encode, x)  # sae.encode(x) of an SAE(d, d) with those parameters
    got = assert_shape(got, (6, d), "sae.encode(x) ([batch, d_sae])").detach()
    expected = loop_encode(W_enc, b_enc, b_dec, x)
    mistakes = {
        "W_enc is used transposed: compute x @ W_enc (W_enc is [d_in, d_sae]), not x @ W_enc.T":
            torch.relu((x - b_dec) @ W_enc.T + b_enc),
        "b_enc is missing: ReLU((x - b_dec) @ W_enc + b_enc)": torch.relu((x - b_dec) @ W_enc),
        "b_dec is not subtracted from the input before encoding: (x - b_dec) @ W_enc + b_enc":
            torch.relu(x @ W_enc + b_enc),
        "b_dec is added to the input instead of subtracted": torch.relu((x + b_dec) @ W_enc + b_enc),
        "the ReLU is missing": (x - b_dec) @ W_enc + b_enc,
    }
    for mistake, wrong in mistakes.items():
        if torch.allclose(got, wrong, atol=1e-4) and not torch.allclose(wrong, expected, atol=1e-4):
            pytest.fail(f"sae.encode: {mistake}.")
    assert_close(got, expected, "sae.encode(x)", atol=1e-4, hint="y = ReLU((x - b_dec) @ W_enc + b_enc).")


@pytest.mark.exercise("SAE", points=2)
def test_sae_decode_forward_and_leading_dims(impl):
    g = gen(1)
    W_dec = torch.randn(5, 3, generator=g)
    b_dec = torch.tensor([1.0, -2.0, 0.5])
    params = dict(W_dec=W_dec, b_dec=b_dec, b_enc=torch.full((5,), 0.2))  # set on an SAE(3, 5)
    y = torch.rand(4, 5, generator=g)
    decode = partial(drive, impl, _sae_method, (3, 5), params, "decode")
    got = assert_shape(call_unmutated(decode, y), (4, 3), "sae.decode(y) ([batch, d_in])").detach()
    if torch.allclose(got, y @ W_dec, atol=1e-4):
        pytest.fail("sae.decode: b_dec is missing: x_hat = y @ W_dec + b_dec.")
    assert_close(got, torch.stack([sum(y[r, f] * W_dec[f] for f in range(5)) + b_dec for r in range(4)]),
                 "sae.decode(y)", atol=1e-4, hint="x_hat = y @ W_dec + b_dec: row f of W_dec is feature f.")
    x = torch.randn(2, 3, 3, generator=g)  # leading dimensions [2, 3]
    sae = drive(impl, _sae_forward_backward, (3, 5), params, x)  # sae(x), then sae(x).sum().backward()
    out = assert_shape(sae["out"], (2, 3, 3), "sae(x) for x of shape [2, 3, d_in]")
    flat = loop_encode(sae["W_enc"], sae["b_enc"], b_dec, x.reshape(6, 3)) @ W_dec + b_dec
    assert_close(out.detach().reshape(6, 3), flat, "sae(x) = decode(encode(x)) on [2, 3, d_in]", atol=1e-4,
                 hint="forward is decode(encode(x)); use @ (or einsum over the last axis) so leading dims pass.")
    for name in ("W_enc", "W_dec", "b_enc", "b_dec"):
        grad = sae["grads"][name]
        assert grad is not None and grad.abs().sum() > 0, f"no gradient reached sae.{name} (no .detach())"


# ---------------------------------------------------------------- sae_loss


@pytest.mark.exercise("sae_loss", points=2)
def test_sae_loss_hand_computed(impl):
    x = torch.tensor([[1.0, 2.0, 0.0], [0.0, -1.0, 3.0]])
    x_hat = torch.tensor([[0.0, 2.0, 1.0], [0.0, 1.0, 3.0]])   # squared errors per row: 2 and 4
    y = torch.tensor([[0.5, 0.0, 1.5, 0.0], [2.0, 0.0, 0.0, -1.0]])  # L1 per row: 2 and 3
    got = assert_shape(call_unmutated(impl.sae_loss, x, x_hat, y, 0.1), (), "sae_loss(...) (a 0-dim tensor)")
    expected = (2 + 4) / 2 + 0.1 * (2 + 3) / 2  # 3.25
    named = {
        "the squared error is averaged over d_in: ||x - x_hat||^2 sums over the dimensions of an activation":
            (2 + 4) / 6 + 0.1 * 2.5,
        "the loss is summed over the batch: average it over the rows": 6 + 0.1 * 5,
        "the L1 term is summed over the batch while the squared error is averaged": 3 + 0.1 * 5,
        "the L1 term is averaged over features as well: ||y||_1 sums over the d_sae features": 3 + 0.1 * 5 / 8,
        "the L1 term ignores the coefficient": 3 + 2.5,
        "the L1 term uses y, not |y| (a negative entry lowered it)": 3 + 0.1 * (2 + 1) / 2,
        "everything is averaged over all entries": 6 / 6 + 0.1 * 5 / 8,
        "that is the L2 norm of y, not the L1 norm": 3 + 0.1 * (math.sqrt(2.5) + math.sqrt(5)) / 2,
    }
    expect_scalar(got.item(), expected, named, "sae_loss")


@pytest.mark.exercise("sae_loss", points=1)
def test_sae_loss_gradient_and_validation(impl):
    g = gen(2)
    x = torch.randn(5, 3, generator=g)
    x_hat = torch.randn(5, 3, generator=g).requires_grad_(True)
    y = torch.rand(5, 4, generator=g).requires_grad_(True)
    loss, grads = drive(impl, _backward, "sae_loss", [x, x_hat, y, 0.5])  # and loss.backward()
    assert isinstance(loss, torch.Tensor) and loss.requires_grad, "the loss must stay differentiable (no .item())"
    assert_close(grads[1], 2 * (x_hat.detach() - x) / 5, "d loss / d x_hat", atol=1e-5,
                 hint="sum over d_in, mean over the batch: the gradient is 2 (x_hat - x) / batch.")
    assert_close(grads[2], torch.full((5, 4), 0.5 / 5), "d loss / d y", atol=1e-5,
                 hint="the L1 term is l1_coefficient * mean over rows of sum over features |y|.")
    expect_value_error(impl.sae_loss, x, x_hat.detach()[:, :2], y, 0.5, what="sae_loss with x_hat of another shape")
    expect_value_error(impl.sae_loss, x, x_hat.detach(), y.detach()[:3], 0.5, what="sae_loss with y of 3 rows, x of 5")
    expect_value_error(impl.sae_loss, x, x_hat.detach(), y.detach(), -1.0, what="sae_loss with l1_coefficient -1")


# ---------------------------------------------------------------- topk


@pytest.mark.exercise("topk", points=2)
def test_topk_hand_cases_and_ties(impl):
    pre = torch.tensor([[0.5, 3.0, -1.0, 2.0, 0.1],
                        [1.0, 1.0, 1.0, 0.0, 1.0],      # a tie at the cut: the lower indices win
                        [-2.0, -0.5, -3.0, -1.0, 0.2]])  # the 2nd largest is negative: ReLU'd to 0
    got = assert_shape(call_unmutated(impl.topk, pre, 2), (3, 5), "topk(pre, 2)")
    expected = torch.tensor([[0.0, 3.0, 0.0, 2.0, 0.0],
                             [1.0, 1.0, 0.0, 0.0, 0.0],
                             [0.0, 0.0, 0.0, 0.0, 0.2]])
    if (got[1] != 0).sum() != 2:
        pytest.fail(f"topk kept {int((got[1] != 0).sum())} entries of the tied row [1, 1, 1, 0, 1] with k=2: keep "
                    f"exactly k per row (a threshold at the k-th value keeps every tie).")
    if torch.allclose(got[1], torch.tensor([0.0, 0.0, 1.0, 0.0, 1.0])) or not torch.equal(got[1], expected[1]):
        pytest.fail(f"at a tie, the lower feature index should be kept: row [1, 1, 1, 0, 1] with k=2 gives "
                    f"[1, 1, 0, 0, 0], got {got[1].tolist()} (a stable sort keeps equal values in index order; "
                    f"torch.topk does not promise which tie it returns).")
    if got[2, 1] < 0:
        pytest.fail("topk kept a negative value: apply the ReLU to the kept entries.")
    if got[0].tolist() == [0.5, 3.0, 0.0, 2.0, 0.1]:
        pytest.fail("topk returned a ReLU of everything: zero all but the k largest of each row.")
    assert_close(got, expected, "topk(pre, 2)", hint="the k largest of each row (last dim), ReLU'd; others 0.")
    three_d = assert_shape(impl.topk(pre.reshape(1, 3, 5), 1), (1, 3, 5), "topk on [1, 3, 5]")
    top1 = torch.tensor([[0.0, 3.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.2]])
    assert torch.allclose(three_d[0], top1), \
        "topk should act on the last dimension for any leading dimensions"


@pytest.mark.exercise("topk", points=1)
def test_topk_gradient_and_validation(impl):
    pre = torch.tensor([[0.5, 3.0, -1.0, 2.0]], requires_grad=True)
    out, grads = drive(impl, _backward, "topk", [pre, 2])  # and out.sum().backward()
    assert isinstance(out, torch.Tensor) and out.requires_grad, "topk must stay differentiable in pre"
    assert_close(grads[0], torch.tensor([[0.0, 1.0, 0.0, 1.0]]), "the gradient of topk(pre, 2).sum()",
                 hint="only the kept (positive) entries pass gradient.")
    for k in (0, 5, 1.5):
        expect_value_error(impl.topk, pre.detach(), k, what=f"topk(pre of d_sae=4, k={k})", expected="k in 1..d_sae")


# ---------------------------------------------------------------- batch_topk


@pytest.mark.exercise("batch_topk", points=2)
def test_batch_topk_selects_over_the_batch(impl):
    pre = torch.tensor([[5.0, 4.0, 3.0, 0.1],
                        [0.2, 0.3, 0.0, -1.0],
                        [2.0, -1.0, 6.0, 1.0]])
    got = assert_shape(call_unmutated(impl.batch_topk, pre, 2), (3, 4), "batch_topk(pre, k=2) on 3 rows")
    # the 6 largest entries of the whole batch: 6, 5, 4, 3, 2, 1
    expected = torch.tensor([[5.0, 4.0, 3.0, 0.0],
                             [0.0, 0.0, 0.0, 0.0],
                             [2.0, 0.0, 6.0, 1.0]])
    per_row = torch.tensor([[5.0, 4.0, 0.0, 0.0], [0.2, 0.3, 0.0, 0.0], [2.0, 0.0, 6.0, 0.0]])
    if torch.allclose(got, per_row):
        pytest.fail("batch_topk kept k entries in every row: BatchTopK keeps the k * batch largest entries of the "
                    "whole batch, so a busy row may keep more than k and a quiet row fewer (flatten first).")
    assert_close(got, expected, "batch_topk(pre, 2)", hint="flatten, keep the int(k * batch) largest of ReLU(pre).")
    half = assert_shape(impl.batch_topk(pre, 1.5), (3, 4), "batch_topk(pre, k=1.5)")  # int(4.5) = 4 entries
    assert (half != 0).sum() == 4, f"k=1.5 with 3 rows keeps int(4.5) = 4 entries, got {int((half != 0).sum())}"


@pytest.mark.exercise("batch_topk", points=1)
def test_batch_topk_ties_negatives_gradient_validation(impl):
    pre = torch.tensor([[1.0, 0.0, 1.0], [1.0, -2.0, 1.0]], requires_grad=True)
    out, grads = drive(impl, _backward, "batch_topk", [pre, 1])  # and out.sum().backward()
    # two entries kept among four tied ones: the first two in row-major order
    assert torch.equal(out.detach(), torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])), \
        (f"at a tie the earlier entry in row-major order (pre.flatten()) should be kept; got {out.tolist()}")
    neg = impl.batch_topk(torch.tensor([[-1.0, -2.0], [-0.5, 0.5]]), 1)
    assert (neg >= 0).all(), f"batch_topk returned negative values {neg.tolist()}: rank ReLU(pre)"
    assert torch.equal(grads[0], torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])), \
        "only the kept entries should pass gradient"
    expect_value_error(impl.batch_topk, pre.detach()[0], 1, what="batch_topk on a 1-D tensor",
                       expected="[batch, d_sae]")
    expect_value_error(impl.batch_topk, pre.detach(), 0.1, what="batch_topk keeping int(0.2) = 0 entries")
    expect_value_error(impl.batch_topk, pre.detach(), 4, what="batch_topk keeping 8 of 6 entries")


# ---------------------------------------------------------------- jumprelu


@pytest.mark.exercise("jumprelu", points=1)
def test_jumprelu_forward(impl):
    pre = torch.tensor([[0.5, 0.2, 1.0, -0.3], [0.05, 0.4, 0.9, 0.3]])
    threshold = torch.tensor([0.1, 0.3, 1.0, 0.2])
    got = assert_shape(call_unmutated(impl.jumprelu, pre, threshold, 0.1), (2, 4), "jumprelu(pre, threshold)")
    expected = torch.tensor([[0.5, 0.0, 0.0, 0.0], [0.0, 0.4, 0.0, 0.3]])  # 1.0 == threshold: not above it
    if torch.allclose(got, torch.relu(pre - threshold)):
        pytest.fail("jumprelu returned ReLU(pre - threshold): a JumpReLU passes pre itself, pre * H(pre - threshold).")
    if torch.allclose(got, torch.relu(pre)):
        pytest.fail("jumprelu ignored the threshold.")
    assert_close(got, expected, "jumprelu(pre, threshold)", hint="pre where pre > threshold (strictly), else 0.")
    expect_value_error(impl.jumprelu, pre, threshold[:3], 0.1, what="jumprelu with a threshold of 3 features, pre of 4")
    expect_value_error(impl.jumprelu, pre, threshold, 0.0, what="jumprelu with bandwidth 0")


@pytest.mark.exercise("jumprelu", points=3)
def test_jumprelu_straight_through_gradients(impl):
    eps = 0.25  # dyadic numbers throughout, so that "exactly eps/2 away" is exact in floating point
    threshold = torch.tensor([0.5, 0.5, 0.5, 1.0], requires_grad=True)
    # |pre - threshold| < eps / 2 = 0.125 only for the entries marked *
    pre = torch.tensor([[0.5625, 0.25, 0.4375, 1.25],        # *  .  *  .
                        [0.59375, 0.65625, 0.75, 0.9375],   # *  .  .  *
                        [0.53125, 0.375, 0.3125, 1.0]],     # *  .  .  *  (0.375 is exactly eps/2 away: outside)
                       requires_grad=True)
    grad_out = torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.5, 1.0, 1.5, 2.0], [-1.0, 1.0, 2.0, 1.0]])
    out, (pre_grad, threshold_grad, _) = drive(impl, _backward, "jumprelu", [pre, threshold, eps], grad_out)
    assert isinstance(out, torch.Tensor) and out.requires_grad, "jumprelu must be differentiable (autograd.Function)"
    # out.backward(grad_out) ran where jumprelu did
    inside = torch.tensor([[1, 0, 1, 0], [1, 0, 0, 1], [1, 0, 0, 1]], dtype=torch.float)
    per_entry = grad_out * -(threshold.detach() / eps) * inside
    expected = per_entry.sum(dim=0)  # [-2 * (1 + 0.5 - 1), 0, -2 * 3, -4 * (2 + 1)]
    got = threshold_grad
    assert got is not None, ("no gradient reached the threshold: write a torch.autograd.Function whose backward "
                             "returns the rectangle-kernel estimate for it")
    got = assert_shape(got, (4,), "the threshold's gradient")
    if torch.all(got == 0):
        pytest.fail("the threshold's gradient is 0 everywhere: the step function's true derivative is 0 almost "
                    "everywhere; the straight-through estimator replaces it with -(threshold / eps) * K(...).")
    named = {"its sign is flipped: raising the threshold removes the activation, so d/d threshold is negative":
                 -expected,
             "the factor threshold is missing: -(threshold / eps) * K((pre - threshold) / eps)":
                 (grad_out * -(1 / eps) * inside).sum(0),
             "the division by the bandwidth eps is missing": (grad_out * -threshold.detach() * inside).sum(0),
             "it is averaged over the batch: the threshold is shared by every row, so sum the rows' gradients":
                 per_entry.mean(0),
             "the incoming gradient is ignored: multiply by grad_out": (-(threshold.detach() / eps) * inside).sum(0),
             "the kernel has the full bandwidth as its half-width: K(u) = 1 only for |u| < 1/2, u = (pre - t) / eps":
                 (grad_out * -(threshold.detach() / eps) * ((pre.detach() - threshold.detach()).abs() < eps)).sum(0),
             "an entry exactly eps/2 away counts as inside: the rectangle is open, -1/2 < u < 1/2":
                 expected + grad_out[2, 1] * -(0.5 / eps)}
    for mistake, wrong in named.items():
        if torch.allclose(got, wrong, atol=1e-4) and not torch.allclose(wrong, expected, atol=1e-4):
            pytest.fail(f"the threshold's gradient is {got.tolist()}: {mistake}.")
    assert_close(got, expected, "the threshold's gradient", atol=1e-4,
                 hint="sum over rows of grad_out * -(threshold / eps) * K((pre - threshold) / eps), "
                      "K = 1 on (-1/2, 1/2).")
    expected_pre = grad_out * (pre.detach() > threshold.detach()).float()
    if pre_grad is not None and torch.allclose(pre_grad, grad_out):
        pytest.fail("the gradient to pre ignores the gate: it is grad_out * H(pre - threshold).")
    assert_close(pre_grad, expected_pre, "the gradient to pre", atol=1e-5,
                 hint="pre's gradient is the ordinary one: grad_out where pre > threshold, else 0.")


@pytest.mark.exercise("jumprelu", points=1)
def test_jumprelu_function_sums_the_threshold_gradient_over_every_leading_dim(impl):
    """JumpReLUFunction on its own, with two leading dimensions [2, 3, d_sae]: the threshold is shared by all
    six rows, so its gradient sums over both leading dimensions, not only the first."""
    eps = 0.5
    threshold = torch.tensor([1.0, 2.0], requires_grad=True)
    pre = torch.tensor([[[1.125, 2.5], [0.5, 1.875], [1.0, 2.0]],
                        [[0.875, 2.125], [3.0, 0.0], [1.25, 1.75]]], requires_grad=True)
    # JumpReLUFunction.apply(pre, threshold, eps), then out.sum().backward()
    out, (pre_grad, threshold_grad, _) = drive(impl, _backward, "JumpReLUFunction.apply", [pre, threshold, eps])
    expected_out = pre.detach() * (pre.detach() > threshold.detach())
    assert_close(out.detach(), expected_out, "JumpReLUFunction.apply(pre, threshold, eps) on [2, 3, 2]",
                 hint="forward returns pre * (pre > threshold), for any leading dimensions.")
    inside = ((pre.detach() - threshold.detach()).abs() < eps / 2).float()
    expected = (-(threshold.detach() / eps) * inside).sum(dim=(0, 1))
    got = threshold_grad
    assert got is not None, "backward returned no gradient for the threshold"
    got = assert_shape(got, (2,), "the threshold's gradient (one entry per feature)")
    if torch.allclose(got, (-(threshold.detach() / eps) * inside).sum(dim=1)[0]) or \
            torch.allclose(got, (-(threshold.detach() / eps) * inside)[0].sum(dim=0)):
        pytest.fail("the threshold's gradient covers only part of the leading dimensions: reshape to "
                    "[-1, d_sae] and sum over every row.")
    assert_close(got, expected, "the threshold's gradient on [2, 3, 2]", atol=1e-5,
                 hint="sum grad_out * -(threshold / eps) * K((pre - threshold) / eps) over all leading dims.")
    assert_close(pre_grad, (pre.detach() > threshold.detach()).float(), "the gradient to pre", atol=1e-6)


# ---------------------------------------------------------------- orthogonality_penalty


@pytest.mark.exercise("orthogonality_penalty", points=2)
def test_orthogonality_penalty_hand_cases(impl):
    s = 1 / math.sqrt(2)
    # rows: e0, 3 * (e0 + e1)/sqrt(2) (not unit!), -e0, e2 * 0.5
    W = torch.tensor([[1.0, 0.0, 0.0], [3 * s, 3 * s, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 0.5]])
    got = assert_shape(call_unmutated(impl.orthogonality_penalty, W), (), "orthogonality_penalty(W_dec) (0-dim)")
    # largest signed cosine to another row: e0 -> s (row 1), row 1 -> s (row 0), -e0 -> 0 (row 3), e2 -> 0
    expected = (s + s + 0 + 0) / 4
    cos_raw = W @ W.T  # no normalization
    named = {
        "it includes each row's cosine with itself (always 1): take the max over j != i": 1.0,
        "it uses |cos|: the penalty is on the signed cosine, opposite features (cos -1) are not penalized":
            (1 + s + 1 + 0) / 4,
        "the rows are not normalized: divide each decoder row by its norm before the dot products":
            cos_raw.masked_fill(torch.eye(4, dtype=torch.bool), -1e9).max(1).values.mean().item(),
        "it is summed over features: take the mean": 2 * s,
        "it is the mean of all cosines, not of each feature's largest":
            ((W / W.norm(dim=1, keepdim=True)) @ (W / W.norm(dim=1, keepdim=True)).T)
            .masked_select(~torch.eye(4, dtype=torch.bool)).mean().item(),
    }
    expect_scalar(got.item(), expected, named, "orthogonality_penalty")


@pytest.mark.exercise("orthogonality_penalty", points=1)
def test_orthogonality_penalty_matches_loop_gradient_and_validation(impl):
    W = torch.randn(9, 4, generator=gen(5)) * torch.linspace(0.5, 2.0, 9)[:, None]
    W.requires_grad_(True)
    got, (W_grad,) = drive(impl, _backward, "orthogonality_penalty", [W])  # and got.backward()
    assert isinstance(got, torch.Tensor) and got.requires_grad, "the penalty must be differentiable in W_dec"
    rows = [w / w.norm() for w in W.detach()]
    best = [max(torch.dot(rows[i], rows[j]).item() for j in range(9) if j != i) for i in range(9)]
    assert abs(got.item() - sum(best) / 9) < 1e-5, f"on a random W_dec: {got.item():.5f}, expected {sum(best) / 9:.5f}"
    assert W_grad is not None and W_grad.abs().sum() > 0, "no gradient reached W_dec"
    expect_value_error(impl.orthogonality_penalty, torch.randn(1, 4), what="orthogonality_penalty on one row",
                       expected="at least 2 features")
    expect_value_error(impl.orthogonality_penalty, torch.randn(4), what="orthogonality_penalty on a 1-D tensor")


# ---------------------------------------------------------------- train_sae


def ref_loss(x, x_hat, y, l1_coefficient):
    return ((x - x_hat) ** 2).sum(1).mean() + l1_coefficient * y.abs().sum(1).mean()


def spy(fn, calls):
    signature = inspect.signature(fn)

    def wrapper(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        calls.append(dict(bound.arguments))
        return fn(*args, **kwargs)

    return wrapper


SPIED = 2  # calls whose tensors the driver sends back in full (the tests read the first two); later ones without


def _train_sae_isolated(lesson, sizes, state, args, kwargs):
    """The learner's train_sae on a RefSAE(*sizes) with this state dict, with ref_loss (recording its calls)
    as the module's sae_loss: the losses, the trained state dict and the call log."""
    sae = RefSAE(*sizes)
    sae.load_state_dict(state)
    calls = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lesson, "sae_loss", spy(ref_loss, calls), raising=False)
        losses = lesson.train_sae(sae, *args, **kwargs)
    calls = [call if i < SPIED else {k: v for k, v in call.items() if type(v) in (int, float, bool)}
             for i, call in enumerate(calls)]
    return {"losses": losses, "state": dict(sae.state_dict()), "calls": calls}


@pytest.fixture
def isolated(impl):
    """The learner's train_sae with a reference sae_loss (recording its calls) in its module. The SAE is
    trained where the learner's code runs; its trained parameters come back into it."""
    calls = []

    def train_sae(sae, *args, **kwargs):
        out = drive(impl, _train_sae_isolated, (sae.d_in, sae.d_sae), dict(sae.state_dict()), list(args), kwargs)
        sae.load_state_dict(out["state"])
        calls.extend(out["calls"])
        return out["losses"]

    return SimpleNamespace(train_sae=train_sae, calls=calls)


def superposed_data(n_tokens=8192, n_features=16, d=6, p=0.06, seed=0):
    """Lesson 08's setting: sparse features (present with probability p, value uniform in [0, 1)) written
    along random unit directions of a smaller space, plus an offset."""
    g = gen(seed)
    directions = torch.randn(n_features, d, generator=g)
    directions = directions / directions.norm(dim=1, keepdim=True)
    features = torch.rand(n_tokens, n_features, generator=g) * (torch.rand(n_tokens, n_features, generator=g) < p)
    return features @ directions + torch.linspace(-1, 1, d), directions


@pytest.mark.exercise("train_sae", points=2)
def test_train_sae_loop_contract(isolated):
    x, _ = superposed_data(2048)
    sae = RefSAE(6, 12, seed=1)
    losses = isolated.train_sae(sae, x, steps=30, batch_size=64, lr=1e-2, l1_coefficient=0.3)
    calls = isolated.calls
    assert len(calls) == 30, f"sae_loss was called {len(calls)} times in 30 steps: compute every step's loss with it"
    first = calls[0]
    assert tuple(first["x"].shape) == (64, 6), \
        f"the batch should be [batch_size, d_in] = (64, 6), got {tuple(first['x'].shape)}"
    assert first["l1_coefficient"] == 0.3, f"pass l1_coefficient on to sae_loss (got {first['l1_coefficient']})"
    assert tuple(first["y"].shape) == (64, 12), "pass y = sae.encode(x) to sae_loss"
    rows = {tuple(r.tolist()) for r in x}
    assert all(tuple(r.tolist()) in rows for r in first["x"][:5]), "every batch row should be a row of activations"
    assert not torch.equal(calls[0]["x"], calls[1]["x"]), \
        "the first two steps used the same batch: draw indices with one generator seeded once, before the loop"
    assert isinstance(losses, list) and len(losses) == 30 and all(isinstance(v, float) for v in losses), \
        "train_sae should return one Python float per step (loss.item())"
    norms = sae.W_dec.detach().norm(dim=1)
    assert torch.allclose(norms, torch.ones(12), atol=1e-5), \
        (f"after training the decoder rows have norms {[round(v, 3) for v in norms.tolist()]}: divide every row of "
         f"W_dec by its norm after each step, or the SAE dodges the L1 penalty by growing W_dec")
    assert sum(losses[-5:]) < sum(losses[:5]), "the loss did not go down"


@pytest.mark.exercise("train_sae", points=2)
def test_train_sae_b_dec_adam_and_seed(isolated):
    x, _ = superposed_data(1024, seed=2)
    sae = RefSAE(6, 12, seed=1)
    isolated.train_sae(sae, x, steps=1, batch_size=32, lr=1e-7, l1_coefficient=0.1)
    if torch.allclose(sae.b_dec.detach(), torch.zeros(6), atol=1e-4):
        pytest.fail("b_dec was not initialised: set it to the mean of the activations before the first step.")
    assert_close(sae.b_dec.detach(), x.mean(0), "b_dec after a step with a tiny learning rate", atol=1e-4,
                 hint="set sae.b_dec to activations.mean(dim=0) (the mean over tokens) before training.")
    start = RefSAE(6, 12, seed=1).state_dict()
    sae = RefSAE(6, 12, seed=1)
    sae.load_state_dict(start)
    isolated.train_sae(sae, x, steps=1, batch_size=256, lr=0.01, l1_coefficient=0.1)
    step = (sae.b_enc.detach() - start["b_enc"]).abs()
    moved = step[step > 0]
    assert len(moved) and torch.allclose(moved.max(), torch.tensor(0.01), rtol=0.05), \
        (f"one step with lr=0.01 moved b_enc by up to {step.max().item():.4g}; Adam's first step moves each "
         f"parameter by about lr: use torch.optim.Adam(sae.parameters(), lr=lr)")

    def run(seed):
        model = RefSAE(6, 12, seed=1)
        model.load_state_dict(start)
        return isolated.train_sae(model, x, steps=5, batch_size=32, lr=1e-3, seed=seed)

    assert run(3) == run(3), "two runs with the same seed gave different losses: seed a torch.Generator with `seed`"
    assert run(3) != run(4), "different seeds gave the same losses: the seed should decide the batches"
    expect_value_error(isolated.train_sae, RefSAE(6, 12), x[:, :5], steps=1, what="train_sae on activations of width 5")


@pytest.mark.exercise("train_sae", points=3)
def test_train_sae_recovers_toy_features(isolated):
    """The link to lesson 08: 16 sparse features squeezed into 6 dimensions. An SAE with 48 features trained
    on the 6-dimensional activations finds most of the 16 true directions again (decoder rows at cosine
    >= 0.9; the reference gets 88-100% over five seeds)."""
    x, directions = superposed_data(8192, p=0.04, seed=0)
    sae = RefSAE(6, 48, seed=0)
    isolated.train_sae(sae, x, steps=1500, batch_size=256, lr=3e-3, l1_coefficient=0.1, seed=0)
    W = sae.W_dec.detach()
    cos = (directions @ (W / W.norm(dim=1, keepdim=True)).T).max(dim=1).values
    recovered = (cos >= 0.9).float().mean().item()
    assert recovered >= 0.8, (f"only {recovered:.0%} of the 16 true directions have a decoder row at cosine >= 0.9 "
                              f"(best cosines {[round(v, 2) for v in cos.tolist()]}). Check the batch sampling, the "
                              f"loss, the Adam step and the decoder normalization after each step.")


# ---------------------------------------------------------------- sae_metrics


@pytest.fixture(scope="module")
def metric_setup():
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(n_layers=2, d_model=8, n_heads=2, d_head=4, d_mlp=16, act_fn="gelu",
                                  normalization_type="LN", n_ctx=16, d_vocab=19, seed=0)
    model = HookedTransformer(cfg).eval()
    with torch.no_grad():  # a residual stream with a large mean, different in every dimension
        model.W_E.add_(torch.linspace(-3, 4, 8))
        model.W_E[0].mul_(10)  # token 0 is the BOS here: a very different activation at position 0
    tokens = torch.randint(1, 19, (5, 12), generator=gen(7))
    tokens[:, 0] = 0
    sae = RefSAE(8, 20, seed=3)
    g = gen(8)
    with torch.no_grad():
        sae.W_enc.mul_(1.5).add_(0.3 * torch.randn(8, 20, generator=g))
        sae.b_enc.copy_(0.5 * torch.randn(20, generator=g))
        sae.b_enc[-4:] = -100.0  # four dead features
    _, cache = model.run_with_cache(tokens, names_filter="blocks.1.hook_resid_pre")
    sae.b_dec.data.copy_(cache["blocks.1.hook_resid_pre"][:, 1:].reshape(-1, 8).mean(0))
    return model, tokens, sae, "blocks.1.hook_resid_pre"


class Identity(nn.Module):  # encodes x as [relu(x), relu(-x)]: reconstructs exactly
    def encode(self, x):
        return torch.cat([x.clamp(min=0), (-x).clamp(min=0)], dim=-1)

    def decode(self, y):
        return y[..., :8] - y[..., 8:]


class Hand(nn.Module):
    def encode(self, x):
        return x


def sent(sae):
    """A RefSAE as data, for a driver: its sizes and state dict."""
    return (sae.d_in, sae.d_sae), dict(sae.state_dict())


def made(sae):
    """The SAE a driver was sent: "identity", "hand", or a RefSAE's (sizes, state dict)."""
    if sae == "identity":
        return Identity()
    if sae == "hand":
        return Hand()
    sizes, state = sae
    ref = RefSAE(*sizes)
    ref.load_state_dict(state)
    return ref


def _sae_metrics(lesson, sae, model, tokens, hook_name, calls=1):
    """sae_metrics(made(sae), model, tokens, hook_name), ``calls`` times on the same model: each call's
    result and the hook points with hooks still attached after it."""
    sae = made(sae)
    out = []
    for _ in range(calls):
        got = lesson.sae_metrics(sae, model, tokens, hook_name)
        out.append({"got": got, "hooked": attached_hooks(model)})
    return out


def _find_feature_with(lesson, sae, activations, in_kind):
    """find_feature(made(sae), activations, in_kind)."""
    return lesson.find_feature(made(sae), activations, in_kind)


def ref_reconstruction(model, tokens, sae, hook_name):
    _, cache = model.run_with_cache(tokens, names_filter=hook_name)
    act = cache[hook_name]
    x = act[:, 1:].reshape(-1, act.shape[-1])
    with torch.no_grad():
        y = sae.encode(x)
        x_hat = sae.decode(y)
    sse = ((x - x_hat) ** 2).sum().item()
    n, d = x.shape
    mean = [sum(x[t, i].item() for t in range(n)) / n for i in range(d)]
    total = sum((x[t, i].item() - mean[i]) ** 2 for t in range(n) for i in range(d))
    return {"l0": (y > 0).float().sum(1).mean().item(), "explained_variance": 1 - sse / total,
            "dead_fraction": sum(1 for f in range(y.shape[1]) if not (y[:, f] > 0).any()) / y.shape[1],
            "_wrong_mean_scalar": 1 - sse / ((x - x.mean()) ** 2).sum().item(),
            "_wrong_no_centering": 1 - sse / (x ** 2).sum().item(),
            "_wrong_token_mean": 1 - sse / ((x - x.mean(1, keepdim=True)) ** 2).sum().item(),
            "_wrong_bos": None}


@pytest.mark.exercise("sae_metrics", points=2)
def test_sae_metrics_reconstruction(impl, metric_setup):
    model, tokens, sae, hook = metric_setup
    got = drive(impl, _sae_metrics, sent(sae), model, tokens, hook)[0]["got"]  # impl.sae_metrics(sae, ...)
    assert isinstance(got, dict), f"sae_metrics should return a dict, got {type(got).__name__}"
    want = ref_reconstruction(model, tokens, sae, hook)
    for key in ("l0", "explained_variance", "dead_fraction"):
        assert key in got, f"the result should have the key {key!r}; it has {sorted(got)}"
        assert isinstance(got[key], float), f"{key} should be a Python float, got {type(got[key]).__name__}"
    ev = got["explained_variance"]
    for key, mistake in (("_wrong_mean_scalar", "the mean is one number over all entries; use the mean over tokens, "
                                                "a vector [d_in]"),
                         ("_wrong_no_centering", "the variance is not centred: subtract the mean over tokens"),
                         ("_wrong_token_mean", "the mean is taken over d_in for each token; take it over tokens")):
        if abs(ev - want[key]) < 1e-4:
            pytest.fail(f"explained_variance is {ev:.4f}, expected {want['explained_variance']:.4f}: {mistake}.")
    assert abs(ev - want["explained_variance"]) < 1e-4, \
        (f"explained_variance is {ev:.4f}, expected {want['explained_variance']:.4f} (positions 1.. only: BOS is "
         f"left out)")
    assert abs(got["l0"] - want["l0"]) < 1e-4, \
        f"l0 is {got['l0']:.4f}, expected {want['l0']:.4f}: the mean over tokens (positions 1..) of features with y > 0"
    assert abs(got["dead_fraction"] - want["dead_fraction"]) < 1e-6, \
        f"dead_fraction is {got['dead_fraction']}, expected {want['dead_fraction']} (features never > 0 on the tokens)"


@pytest.mark.exercise("sae_metrics", points=3)
def test_sae_metrics_ce_loss_recovered(impl, metric_setup):
    from mi_course.saes import ce_loss_recovered  # the course's canonical version, as an oracle

    model, tokens, sae, hook = metric_setup
    # impl.sae_metrics(sae, model, tokens, hook) twice on the same model, with the hooks left after each call
    first, second = drive(impl, _sae_metrics, sent(sae), model, tokens, hook, calls=2)
    got = first["got"]
    assert not first["hooked"], (f"hooks still attached after sae_metrics: {first['hooked']}. Use "
                                       f"model.run_with_hooks or `with model.hooks(...)`, which remove them.")
    oracle = ce_loss_recovered(sae, model, tokens, hook_name=hook, progress=False)
    for key in ("ce_clean", "ce_sae", "ce_zero_ablated", "ce_loss_recovered"):
        assert key in got and isinstance(got[key], float), f"the result should have a float {key!r}"
    if abs(got["ce_clean"] - oracle["ce_clean"]) > 1e-4:
        full = torch.nn.functional.cross_entropy(model(tokens)[:, :-1].flatten(0, 1), tokens[:, 1:].flatten()).item()
        hint = (" The prediction made at BOS (position 0) is included: score positions 1 .. pos-2 only."
                if abs(got["ce_clean"] - full) < 1e-4 else "")
        pytest.fail(f"ce_clean is {got['ce_clean']:.4f}, expected {oracle['ce_clean']:.4f}.{hint}")
    if abs(got["ce_zero_ablated"] - oracle["ce_mean_ablated"]) < 1e-4:
        pytest.fail("ce_zero_ablated is the loss with the *mean* activation: replace the activation by zeros.")
    assert abs(got["ce_zero_ablated"] - oracle["ce_zero_ablated"]) < 1e-4, \
        (f"ce_zero_ablated is {got['ce_zero_ablated']:.4f}, expected {oracle['ce_zero_ablated']:.4f}: "
         f"zeros at the hook for positions 1.. (BOS keeps its activation)")
    assert abs(got["ce_sae"] - oracle["ce_sae"]) < 1e-4, \
        (f"ce_sae is {got['ce_sae']:.4f}, expected {oracle['ce_sae']:.4f}: replace the activation at positions 1.. by "
         f"sae.decode(sae.encode(act)) through a hook")
    wrong = (oracle["ce_mean_ablated"] - oracle["ce_sae"]) / (oracle["ce_mean_ablated"] - oracle["ce_clean"])
    if abs(got["ce_loss_recovered"] - wrong) < 1e-4:
        pytest.fail("ce_loss_recovered uses the mean-ablation baseline; this exercise's baseline is zero ablation.")
    want = oracle["ce_loss_recovered_zero"]
    flipped = (oracle["ce_sae"] - oracle["ce_clean"]) / (oracle["ce_zero_ablated"] - oracle["ce_clean"])
    if abs(got["ce_loss_recovered"] - flipped) < 1e-4:
        pytest.fail("ce_loss_recovered is the fraction lost, not recovered: "
                    "(ce_ablated - ce_sae) / (ce_ablated - ce_clean).")
    assert abs(got["ce_loss_recovered"] - want) < 1e-4, \
        f"ce_loss_recovered is {got['ce_loss_recovered']:.4f}, expected {want:.4f}"
    again = second["got"]
    assert abs(again["ce_clean"] - got["ce_clean"]) < 1e-6, "a second call gave another clean loss: a hook stayed on"


@pytest.mark.exercise("sae_metrics", points=1)
def test_sae_metrics_perfect_sae_and_bad_hook(impl, metric_setup):
    model, tokens, _, hook = metric_setup
    sae_metrics = partial(drive, impl, _sae_metrics)  # returns [{"got": the result, "hooked": ...}]
    got = sae_metrics("identity", model, tokens, hook)[0]["got"]  # impl.sae_metrics(Identity(), ...)
    assert abs(got["explained_variance"] - 1) < 1e-5, \
        f"an exact reconstruction explains all variance, got {got['explained_variance']}"
    assert abs(got["ce_loss_recovered"] - 1) < 1e-4, \
        f"an exact reconstruction recovers all the loss, got {got['ce_loss_recovered']}"
    expect_value_error(sae_metrics, "identity", model, tokens, "blocks.9.hook_resid_pre",
                       what="sae_metrics at a hook the model does not have")


# ---------------------------------------------------------------- find_feature (investigation)


@pytest.mark.exercise("find_feature", points=1)
def test_find_feature_prefers_a_selective_feature(impl):
    """Hand-made: feature 0 fires on everything (strongest overall), feature 1 once, very strongly, on one token
    of the kind, feature 2 on most tokens of the kind and rarely elsewhere: feature 2 is the answer."""
    n, d = 1000, 4
    g = gen(11)
    in_kind = torch.zeros(n, dtype=torch.bool)
    in_kind[:300] = True
    find_feature = partial(drive, impl, _find_feature_with)  # "hand": the SAE is Hand(), y = x

    acts = torch.zeros(n, d)
    acts[:, 0] = 5 + torch.rand(n, generator=g)
    acts[5, 1] = 50.0
    acts[:300, 2] = 1 + torch.rand(300, generator=g)
    acts[300:320, 2] = 0.5
    acts[:, 3] = torch.rand(n, generator=g) * (torch.arange(n) % 2 == 0)
    got = call_unmutated(find_feature, "hand", acts, in_kind)
    assert isinstance(got, int) and not isinstance(got, bool), f"return a Python int, got {type(got).__name__}"
    if got == 0:
        pytest.fail("feature 0 fires strongly on every token: rank by selectivity (what fraction of a feature's "
                    "strongest activations are of the kind), not by the size of the activation.")
    if got == 1:
        pytest.fail("feature 1 fires once, on a single token: ask for many strong activations, not the one largest.")
    assert got == 2, f"feature {got} is not the selective one (2)"
    expect_value_error(find_feature, "hand", acts, in_kind[:10], what="find_feature with in_kind of another length")
    expect_value_error(find_feature, "hand", acts, torch.zeros(n, dtype=torch.bool),
                       what="find_feature with no token of the kind")


_ACTIVATIONS = {}


def labelled_activations(model, sae, genre, seed, split, n_documents=150):
    """Activations at the SAE's hook for n corpus documents (one per row after BOS, padded at the end, which a
    causal model never looks back at; BOS and padding left out) and whether each token is in a document of
    ``genre``. Written here, independently of the notebook's helper; the activations are computed once per
    set of documents and shared by the genres."""
    from mi_course.organisms import corpus

    key = (id(model), sae.hook_name, seed, split, n_documents)
    if key not in _ACTIVATIONS:
        docs = corpus.generate_documents(n_documents, seed=seed, split=split)
        tok = model.tokenizer
        ids = [tok(d.text, add_special_tokens=False)["input_ids"][: model.cfg.n_ctx - 1] for d in docs]
        width = 1 + max(len(i) for i in ids)
        rows = torch.full((len(ids), width), tok.bos_token_id, dtype=torch.long)
        real = torch.zeros(len(ids), width, dtype=torch.bool)
        for r, doc_ids in enumerate(ids):
            rows[r, 1:1 + len(doc_ids)] = torch.tensor(doc_ids)
            real[r, 1:1 + len(doc_ids)] = True
        with torch.no_grad():
            layer = int(sae.hook_name.split(".")[1])  # the blocks after the hook's are not needed
            _, cache = model.run_with_cache(rows, names_filter=sae.hook_name, stop_at_layer=layer + 1)
        genres = [d.genre for d in docs]
        _ACTIVATIONS[key] = (cache[sae.hook_name][real], genres, real)
    acts, genres, real = _ACTIVATIONS[key]
    kind = torch.tensor([g == genre for g in genres])[:, None].expand(-1, real.shape[1])
    return acts, kind[real]


@pytest.fixture(scope="module")
def shipped():
    import mi_course

    return mi_course.load_model("lm", mode="lite", device="cpu"), mi_course.load_model("sae", mode="lite", device="cpu")


@pytest.mark.exercise("find_feature", points=2)
@pytest.mark.parametrize("genre", ["latin", "bridge"])
def test_find_feature_on_the_shipped_sae(impl, shipped, genre):
    """The learner's method, on training-split documents, must pick a feature whose 100 strongest activations
    on *held-out* documents (another seed and split) are at least 80% on that genre's text."""
    model, sae = shipped
    acts, in_kind = labelled_activations(model, sae, genre, seed=1, split="train")
    feature = impl.find_feature(sae, acts, in_kind)
    assert isinstance(feature, int) and 0 <= feature < sae.W_dec.shape[0], f"not a feature id: {feature!r}"
    held, held_kind = labelled_activations(model, sae, genre, seed=2, split="heldout")
    with torch.no_grad():
        y = sae.encode(held)[:, feature]
    top = y.topk(100).indices
    precision = held_kind[top].float().mean().item()
    assert (y[top] > 0).all(), f"feature {feature} fires on fewer than 100 held-out tokens"
    assert precision >= 0.8, (f"on held-out documents, {precision:.0%} of feature {feature}'s 100 strongest "
                              f"activations are on {genre} text (needed: 80%). Rank features by how selective "
                              f"their strongest activations are for the kind of text.")
