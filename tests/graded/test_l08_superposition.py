"""Graded tests for lesson 08 (superposition).

Expected values come from a different route than the reference solution: explicit loops over examples,
instances and features, hand-derived numbers on tiny hand-made tensors, and statistical properties.
"""

import inspect
import math
from functools import partial
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn

from mi_course.grading.asserts import assert_close, assert_finite, assert_shape, call_unmutated, expect_value_error
from mi_course.grading.judge import drive

LESSON = "l08_superposition"


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- independent references


def loop_forward(W, b, x):
    """ReLU(W^T W x + b), one example and one instance at a time."""
    batch, n_instances, n_features = x.shape
    out = torch.zeros(batch, n_instances, n_features)
    for e in range(batch):
        for k in range(n_instances):
            hidden = W[k] @ x[e, k]
            out[e, k] = torch.clamp(W[k].T @ hidden + b[k], min=0)
    return out


def loop_loss(x, x_hat, importance):
    """sum over instances of (mean over examples of (sum over features of importance * error^2))."""
    batch, n_instances, n_features = x.shape
    imp = importance if importance.dim() == 2 else importance.expand(n_instances, n_features)
    total = 0.0
    for k in range(n_instances):
        per_example = 0.0
        for e in range(batch):
            for i in range(n_features):
                per_example += imp[k, i].item() * (x[e, k, i].item() - x_hat[e, k, i].item()) ** 2
        total += per_example / batch
    return total


def loop_dimensionality(W):
    """D_i = ||W_i||^2 / sum_j (W_i_hat . W_j)^2, column by column; 0 for a zero column."""
    n_instances, _, n_features = W.shape
    out = torch.zeros(n_instances, n_features)
    for k in range(n_instances):
        for i in range(n_features):
            w_i = W[k, :, i]
            norm = math.sqrt(sum(v * v for v in w_i.tolist()))
            if norm == 0:
                continue
            denominator = sum((torch.dot(w_i / norm, W[k, :, j]).item()) ** 2 for j in range(n_features))
            out[k, i] = norm**2 / denominator
    return out


class RefToyModel(nn.Module):
    """A toy model written without the learner's ToyModel, so train_toy_model is graded on its own."""

    def __init__(self, n_features, n_hidden, n_instances):
        super().__init__()
        self.n_features, self.n_hidden, self.n_instances = n_features, n_hidden, n_instances
        self.W = nn.Parameter(torch.randn(n_instances, n_hidden, n_features) * (2 / (n_hidden + n_features)) ** 0.5)
        self.b_final = nn.Parameter(torch.zeros(n_instances, n_features))

    def forward(self, x):
        hidden = self.W.unsqueeze(0) @ x.unsqueeze(-1)  # [batch, inst, hidden, 1]
        out = self.W.transpose(1, 2).unsqueeze(0) @ hidden
        return torch.relu(out.squeeze(-1) + self.b_final)


def ref_batch(batch_size, n_features, feature_probability, n_instances=1, generator=None):
    p = torch.as_tensor(feature_probability, dtype=torch.float32).reshape(-1)
    p = p.expand(n_instances) if p.numel() == 1 else p
    values = torch.rand(batch_size, n_instances, n_features, generator=generator)
    keep = torch.rand(batch_size, n_instances, n_features, generator=generator) < p.view(1, n_instances, 1)
    return torch.where(keep, values, torch.zeros(()))


def ref_loss(x, x_hat, importance):
    return (importance * (x - x_hat) ** 2).sum(dim=(0, 2)).div(x.shape[0]).sum()


def pentagon(radius=1.0):
    angles = torch.arange(5) * 2 * math.pi / 5
    return radius * torch.stack([angles.cos(), angles.sin()])  # [2, 5]


def is_tensor_like(t, shape):
    return isinstance(t, torch.Tensor) and tuple(t.shape) == tuple(shape) and torch.isfinite(t).all()


# ---------------------------------------------------------------- ToyModel


def set_weights(model, W, b):
    with torch.no_grad():
        model.W.copy_(W)
        model.b_final.copy_(b)


# Drivers: they run next to the learner's code (in class grading, in the sandboxed subject) and return data
# only; every check on that data stays in the tests below.


def _toymodel_made(lesson, *sizes, seed=None):
    """A fresh ToyModel(*sizes) (after torch.manual_seed(seed) if given), as data."""
    if seed is not None:
        torch.manual_seed(seed)
    model = lesson.ToyModel(*sizes)
    params = {name: getattr(model, name, None) for name in ("W", "b_final")}
    return {"params": {k: v.detach().clone() if isinstance(v, torch.Tensor) else None for k, v in params.items()},
            "is_parameter": {k: isinstance(v, nn.Parameter) for k, v in params.items()},
            "names": sorted(name for name, _ in model.named_parameters()),
            "sizes": tuple(getattr(model, a, None) for a in ("n_features", "n_hidden", "n_instances"))}


def _toymodel_forward(lesson, sizes, W, b, x):
    """model(x) of a ToyModel(*sizes) given the weights W and b_final."""
    model = lesson.ToyModel(*sizes)
    set_weights(model, W, b)
    return model(x)


def _toymodel_backward(lesson, sizes, x):
    """A fresh ToyModel(*sizes) with b_final = 0.1: model(x), its weights, and the gradients of model(x).sum()."""
    model = lesson.ToyModel(*sizes)
    with torch.no_grad():
        model.b_final.fill_(0.1)  # every output active, so every parameter gets a gradient
    out = model(x)
    if isinstance(out, torch.Tensor) and out.requires_grad:
        out.sum().backward()
    return {"out": out, "W": model.W.detach().clone(), "b_final": model.b_final.detach().clone(),
            "grads": {name: getattr(model, name).grad for name in ("W", "b_final")}}


@pytest.mark.exercise("ToyModel", points=1)
def test_toymodel_parameters(impl):
    model = drive(impl, _toymodel_made, 5, 2, 3)
    params = model["params"]
    assert model["is_parameter"]["W"], "model.W should be an nn.Parameter"
    assert model["is_parameter"]["b_final"], "model.b_final should be an nn.Parameter"
    assert_shape(params["W"], (3, 2, 5), "model.W ([n_instances, n_hidden, n_features])")
    assert_shape(params["b_final"], (3, 5), "model.b_final ([n_instances, n_features])")
    names = set(model["names"])
    assert {"W", "b_final"} <= names, f"W and b_final must be registered parameters; found {sorted(names)}"
    assert torch.all(params["b_final"] == 0), "b_final should start at zeros"
    W = assert_finite(params["W"], "model.W")
    assert W.abs().sum() > 0 and W.std() > 0, "W should start random (e.g. Xavier normal), not zero or constant"
    assert not torch.allclose(W[0], W[1]), "each instance should get its own random W[k]"
    assert model["sizes"] == (5, 2, 3), \
        "keep n_features, n_hidden and n_instances as attributes"
    # Xavier normal: mean 0, std sqrt(2 / (n_hidden + n_features)), measured on 120,000 weights
    n_features, n_hidden = 400, 100
    W = assert_finite(drive(impl, _toymodel_made, n_features, n_hidden, 3, seed=0)["params"]["W"], "model.W")
    W = assert_shape(W, (3, n_hidden, n_features), "model.W ([n_instances, n_hidden, n_features])")
    want = math.sqrt(2 / (n_hidden + n_features))
    mean, std = W.mean().item(), W.std().item()
    named = {"std 1: torch.randn is not scaled": 1.0,
             "the factor 2 is missing, sqrt(1 / (n_hidden + n_features))": math.sqrt(1 / (n_hidden + n_features)),
             "that is Kaiming's sqrt(2 / n_features), not Xavier's": math.sqrt(2 / n_features),
             "that is the variance 2 / (n_hidden + n_features), not its square root": 2 / (n_hidden + n_features),
             "nn.init.xavier_normal_ on the whole 3-D tensor counts n_instances and n_features into its fans: "
             "initialise each instance's [n_hidden, n_features] matrix on its own":
                 math.sqrt(2 / (n_features * (n_hidden + 3)))}
    for mistake, value in named.items():
        if abs(std - value) < 0.03 * value:
            pytest.fail(f"the initial weights have std {std:.4f}, expected sqrt(2 / (n_hidden + n_features)) = "
                        f"{want:.4f}: {mistake}.")
    assert abs(mean) < 0.02 * std, (f"the initial weights have mean {mean:.4f}; Xavier-normal weights have mean 0 "
                                    f"(torch.randn, not torch.rand)")
    assert abs(std - want) < 0.03 * want, (f"the initial weights have std {std:.4f}, expected Xavier normal "
                                           f"sqrt(2 / (n_hidden + n_features)) = {want:.4f}")
    within = (W.abs() < want).float().mean().item()  # a normal distribution has 68.3% within one std
    assert abs(within - 0.683) < 0.01, (f"{within:.1%} of the initial weights lie within one std of 0; a normal "
                                        f"distribution has 68.3%: draw them with torch.randn")


@pytest.mark.exercise("ToyModel", points=2)
def test_toymodel_forward_matches_loop(impl):
    g = gen(0)
    W = torch.randn(2, 3, 4, generator=g)
    b = torch.tensor([[-0.5, 0.3, -2.0, 0.1], [0.2, -1.0, 0.0, -3.0]])
    model = partial(drive, impl, _toymodel_forward, (4, 3, 2), W, b)  # ToyModel(4, 3, 2) with W and b
    x = torch.rand(6, 2, 4, generator=g)
    out = assert_shape(call_unmutated(model, x), (6, 2, 4), "model(x) ([batch, n_instances, n_features])")
    out = out.detach()
    pre = torch.stack([torch.stack([W[k].T @ W[k] @ x[e, k] for k in range(2)]) for e in range(6)])
    if is_tensor_like(out, pre.shape):
        if torch.allclose(out, torch.relu(pre), atol=1e-4):
            pytest.fail("The output ignores the bias: add b_final before the ReLU.")
        if torch.allclose(out, pre + b, atol=1e-4):
            pytest.fail("The output has negative values: apply the ReLU after adding b_final.")
        if torch.allclose(out, torch.relu(pre) + b, atol=1e-4):
            pytest.fail("The ReLU comes last: ReLU(W^T W x + b), not ReLU(W^T W x) + b.")
    assert_close(out, loop_forward(W, b, x), "model(x)", atol=1e-4,
                 hint="Each instance k maps x[:, k] through W[k]: h = W[k] x, output ReLU(W[k]^T h + b_final[k]).")


@pytest.mark.exercise("ToyModel", points=1)
def test_toymodel_transposes_correctly(impl):
    """With n_hidden == n_features, W W^T and W^T W have the same shape, so only the values tell."""
    g = gen(1)
    W = torch.tensor([[[1.0, 2.0, 0.0], [0.0, 1.0, -1.0], [0.5, 0.0, 1.0]]])
    b = torch.full((1, 3), -0.1)
    x = torch.rand(5, 1, 3, generator=g)
    out = drive(impl, _toymodel_forward, (3, 3, 1), W, b, x).detach()  # ToyModel(3, 3, 1) with W and b
    wrong = torch.relu(x @ (W[0] @ W[0].T).T + b)  # ReLU(W W^T x + b), example by example
    if is_tensor_like(out, wrong.shape) and torch.allclose(out, wrong, atol=1e-4):
        pytest.fail("You computed W W^T x. W has shape [n_hidden, n_features]: the hidden vector is h = W x "
                    "(contract over features) and the output is W^T h (contract over hidden).")
    assert_close(out, loop_forward(W, b, x), "model(x) with a square, non-symmetric W", atol=1e-4,
                 hint="The output is ReLU(W^T W x + b); check which index each einsum contracts.")


@pytest.mark.exercise("ToyModel", points=1)
def test_toymodel_is_differentiable(impl):
    x = torch.rand(8, 2, 5, generator=gen(2))
    # ToyModel(5, 2, 2) with b_final = 0.1, model(x), then model(x).sum().backward()
    model = call_unmutated(partial(drive, impl, _toymodel_backward, (5, 2, 2)), x)
    out = model["out"]
    assert isinstance(out, torch.Tensor) and out.requires_grad, \
        "model(x) should be differentiable in W and b_final (no .detach(), no torch.no_grad())"
    for name in ("W", "b_final"):
        grad = model["grads"][name]
        assert grad is not None and grad.abs().sum() > 0, f"no gradient reached model.{name}"
    W = model["W"].clone().requires_grad_(True)
    b = model["b_final"].clone().requires_grad_(True)
    loop_forward(W, b, x).sum().backward()
    assert_close(model["grads"]["W"], W.grad, "the gradient of model(x).sum() with respect to W", atol=1e-4,
                 hint="W is used twice, in h = W x and in W^T h: both uses must stay in the graph (no .detach()).")


# ---------------------------------------------------------------- sparse_feature_batch


def _batch_from(lesson, *args, seed):
    """sparse_feature_batch(*args, generator) with a generator seeded with ``seed`` (made where it runs)."""
    return lesson.sparse_feature_batch(*args, gen(seed))


@pytest.mark.exercise("sparse_feature_batch", points=1)
def test_batch_shape_range_and_generator(impl):
    x = assert_shape(drive(impl, _batch_from, 7, 5, 0.5, 3, seed=0), (7, 3, 5),
                     "sparse_feature_batch(7, 5, 0.5, 3) ([batch, n_instances, n_features])")
    assert x.is_floating_point(), f"the batch should hold floats, got {x.dtype}"
    if (x == 1).any():
        pytest.fail("Some values are exactly 1: a present feature takes a value uniform in [0, 1) "
                    "(torch.rand), not 1.")
    assert (x >= 0).all() and (x < 1).all(), "every value should be in [0, 1)"
    default = assert_shape(impl.sparse_feature_batch(4, 6, 0.5), (4, 1, 6), "sparse_feature_batch(4, 6, 0.5)")
    assert default.is_floating_point()
    a = drive(impl, _batch_from, 50, 4, 0.5, 2, seed=7)
    b = drive(impl, _batch_from, 50, 4, 0.5, 2, seed=7)
    c = drive(impl, _batch_from, 50, 4, 0.5, 2, seed=8)
    assert torch.equal(a, b), "the same generator state must give the same batch: pass generator= to torch.rand"
    assert not torch.equal(a, c), "different generators gave the same batch: is the generator used?"


@pytest.mark.exercise("sparse_feature_batch", points=2)
def test_batch_statistics(impl):
    p, batch, n = 0.1, 4000, 10
    x = drive(impl, _batch_from, batch, n, p, 2, seed=1)
    x = assert_shape(x, (batch, 2, n), "sparse_feature_batch(4000, 10, 0.1, 2)")
    present = x != 0
    frac = present.float().mean().item()
    if abs(frac - (1 - p)) < 0.02:
        pytest.fail(f"{frac:.0%} of the entries are nonzero with feature_probability={p}: sparsity semantics "
                    f"swapped. feature_probability is the chance a feature is present (nonzero); the sparsity "
                    f"is S = 1 - feature_probability.")
    assert abs(frac - p) < 0.01, \
        f"{frac:.3f} of the entries are nonzero; with feature_probability={p} it should be about {p}"
    per_feature = present.float().mean(dim=0)
    assert ((per_feature - p).abs() < 0.03).all(), \
        f"each feature should be present with probability {p}; per-feature rates: {per_feature.flatten().tolist()}"
    values = x[present]
    if (values == 1).float().mean() > 0.5:
        pytest.fail("Present features are all 1: they should take a value uniform in [0, 1).")
    assert abs(values.mean().item() - 0.5) < 0.03 and abs((values < 0.5).float().mean().item() - 0.5) < 0.05, \
        f"present values should be uniform in [0, 1) (mean 0.5), got mean {values.mean().item():.3f}"
    pairs = present[:, 0, :].float()
    co = (pairs.T @ pairs / batch)[~torch.eye(n, dtype=torch.bool)].mean().item()
    assert abs(co - p * p) < 0.005, (f"two features are both present in {co:.3f} of the examples; independent "
                                     f"entries would give {p * p:.3f}: draw presence for every entry separately")
    assert not torch.equal(present[:, 0], present[:, 1]), "instances got the same mask: draw each entry separately"


@pytest.mark.exercise("sparse_feature_batch", points=1)
def test_batch_probability_per_instance(impl):
    # n_features == n_instances, so a probability applied along the wrong axis still broadcasts.
    p = torch.tensor([0.0, 0.25, 1.0])
    x = call_unmutated(partial(drive, impl, _batch_from), 4000, 3, p, 3, seed=2)
    x = assert_shape(x, (4000, 3, 3), "sparse_feature_batch(4000, 3, tensor([0, 0.25, 1]), 3)")
    rates = (x != 0).float().mean(dim=(0, 2))
    by_feature = (x != 0).float().mean(dim=(0, 1))
    if (by_feature - p).abs().max() < 0.05 and (rates - p).abs().max() > 0.1:
        pytest.fail("feature_probability[k] is applied to feature k; it belongs to instance k (dim 1). "
                    "Reshape it to [n_instances, 1] before comparing.")
    if (rates - (1 - p)).abs().max() < 0.05:
        pytest.fail("Instance 0 (probability 0) is dense and instance 2 (probability 1) is empty: sparsity "
                    "semantics swapped; feature_probability is the chance of being nonzero.")
    assert rates[0] == 0, f"instance 0 has probability 0 and should be all zeros (nonzero rate {rates[0]:.3f})"
    assert rates[2] > 0.999, f"instance 2 has probability 1 and every entry should be present (rate {rates[2]:.3f})"
    assert abs(rates[1] - 0.25) < 0.03, f"instance 1 has probability 0.25 but a nonzero rate of {rates[1]:.3f}"


@pytest.mark.exercise("sparse_feature_batch", points=1)
def test_batch_rejects_bad_probability(impl):
    bad = [(1.5, 1), (-0.1, 1), (torch.tensor([0.5, 1.2]), 2), (torch.tensor([-0.01, 0.5]), 2),
           (torch.tensor([0.1, 0.2, 0.3]), 2)]
    for p, n_instances in bad:
        shown = [round(v, 3) for v in p.tolist()] if isinstance(p, torch.Tensor) else p
        message = expect_value_error(impl.sparse_feature_batch, 4, 3, p, n_instances,
                                     what=f"sparse_feature_batch(4, 3, {shown}, n_instances={n_instances})",
                                     expected="probabilities lie in [0, 1], and a tensor has shape [n_instances]")
        assert message.strip(), f"the ValueError for feature_probability={shown} should say what was expected"
    for p in (0.0, 1.0, torch.tensor([0.0, 1.0])):
        impl.sparse_feature_batch(4, 3, p, 2)  # the edges of [0, 1] are allowed


# ---------------------------------------------------------------- importance_weighted_loss


def small_example():
    g = gen(3)
    x = torch.rand(4, 2, 3, generator=g)  # batch 4, instances 2, features 3: every mistake gives its own factor
    x_hat = torch.rand(4, 2, 3, generator=g)
    return x, x_hat


@pytest.mark.exercise("importance_weighted_loss", points=2)
def test_loss_hand_computed(impl):
    x, x_hat = small_example()
    importance = torch.tensor([1.0, 2.0, 0.5])
    got = assert_shape(call_unmutated(impl.importance_weighted_loss, x, x_hat, importance), (),
                       "importance_weighted_loss(...) (a 0-dim tensor)")
    expected = loop_loss(x, x_hat, importance)
    value = got.item()
    wrong = {
        "importance is ignored: multiply each feature's squared error by its importance":
            loop_loss(x, x_hat, torch.ones(3)),
        "mean over features: the loss sums over features (mean only over the batch)": expected / 3,
        "mean over instances: sum over instances, so each instance gets its own full gradient": expected / 2,
        "sum over the batch: average over the batch (mean over examples)": expected * 4,
        "mean over everything: sum over features and instances, mean over the batch only": expected / 6,
        "importance is squared: weight the squared error, importance * (x - x_hat)^2":
            loop_loss(x, x_hat, importance**2),
    }
    for mistake, value_if in wrong.items():
        if abs(value - value_if) < 1e-5 and abs(value_if - expected) > 1e-4:
            pytest.fail(f"The loss is {value:.5f}, expected {expected:.5f}: {mistake}.")
    assert abs(value - expected) < 1e-5, f"the loss is {value:.5f}, expected {expected:.5f}"


@pytest.mark.exercise("importance_weighted_loss", points=1)
def test_loss_importance_per_instance(impl):
    x, x_hat = small_example()
    importance = torch.tensor([[1.0, 0.0, 3.0], [0.2, 0.7, 0.0]])
    got = assert_shape(call_unmutated(impl.importance_weighted_loss, x, x_hat, importance), (),
                       "importance_weighted_loss with importance of shape [n_instances, n_features]")
    expected = loop_loss(x, x_hat, importance)
    assert abs(got.item() - expected) < 1e-5, \
        f"with importance[k, i] per instance the loss is {got.item():.5f}, expected {expected:.5f}"


def _backward(lesson, name, *args):
    """out = lesson.<name>(*args) and, when out is differentiable, out.backward(): (out, the args' .grad)."""
    out = getattr(lesson, name)(*args)
    if isinstance(out, torch.Tensor) and out.requires_grad:
        out.backward()
    return out, [a.grad if isinstance(a, torch.Tensor) else None for a in args]


@pytest.mark.exercise("importance_weighted_loss", points=1)
def test_loss_gradient_is_per_instance(impl):
    x, x_hat = small_example()
    importance = torch.tensor([1.0, 2.0, 0.5])
    x_hat = x_hat.clone().requires_grad_(True)
    loss, grads = drive(impl, _backward, "importance_weighted_loss", x, x_hat, importance)  # and loss.backward()
    assert isinstance(loss, torch.Tensor) and loss.requires_grad, "the loss must stay differentiable (no .item())"
    # d/d x_hat[b, k, i] of importance_i * (x - x_hat)^2 / batch = 2 importance_i (x_hat - x) / batch
    expected = 2 * importance * (x_hat.detach() - x) / x.shape[0]
    assert_close(grads[1], expected, "the gradient of the loss with respect to x_hat", atol=1e-6,
                 hint="Each instance's gradient should be that of its own loss: sum over instances and "
                      "features, mean over the batch.")


# ---------------------------------------------------------------- train_toy_model


def spy(fn, calls):
    """``fn``, recording the arguments of every call (by parameter name) in ``calls``."""
    signature = inspect.signature(fn)

    def wrapper(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        out = fn(*args, **kwargs)
        calls.append({**bound.arguments, "returned": out})
        return out

    return wrapper


SPIED = 2  # calls whose tensors a driver sends back in full (the tests read the first two); later ones without


def _train_isolated(lesson, sizes, state, args, kwargs):
    """The learner's train_toy_model on a RefToyModel(*sizes) with this state dict, with ref_batch and
    ref_loss (recording their calls) in the module: the losses, the trained state dict and the call logs."""
    model = RefToyModel(*sizes)
    model.load_state_dict(state)
    calls = SimpleNamespace(batch=[], loss=[])
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lesson, "sparse_feature_batch", spy(ref_batch, calls.batch), raising=False)
        mp.setattr(lesson, "importance_weighted_loss", spy(ref_loss, calls.loss), raising=False)
        losses = lesson.train_toy_model(model, *args, **kwargs)

    def sent(log):  # the first SPIED calls in full (but the generator), later ones only their plain numbers
        return [{k: v for k, v in call.items()
                 if (i < SPIED and k != "generator") or type(v) in (int, float, bool)}
                for i, call in enumerate(log)]

    return {"losses": losses, "state": dict(model.state_dict()), "batch": sent(calls.batch), "loss": sent(calls.loss)}


@pytest.fixture
def isolated(impl):
    """The learner's train_toy_model, with reference batch and loss functions (that record their calls) in
    its module, so that only the training loop is graded here (the other two exercises have their own
    tests). The model is trained where the learner's code runs; its trained weights come back into it."""
    calls = SimpleNamespace(batch=[], loss=[])

    def train_toy_model(model, *args, **kwargs):
        sizes = (model.n_features, model.n_hidden, model.n_instances)
        out = drive(impl, _train_isolated, sizes, dict(model.state_dict()), list(args), kwargs)
        model.load_state_dict(out["state"])
        calls.batch.extend(out["batch"])
        calls.loss.extend(out["loss"])
        return out["losses"]

    return SimpleNamespace(train_toy_model=train_toy_model, calls=calls)


@pytest.mark.exercise("train_toy_model", points=1)
def test_train_returns_losses_and_trains_in_place(isolated):
    torch.manual_seed(0)
    model = RefToyModel(5, 2, 2)
    before = model.W.detach().clone()
    importance = torch.tensor([1.0, 0.9, 0.8, 0.7, 0.6])
    losses = isolated.train_toy_model(model, 0.3, importance, steps=60, batch_size=128, lr=1e-2)
    batches, loss_calls = isolated.calls.batch, isolated.calls.loss
    assert batches, "draw every batch with this module's sparse_feature_batch (see the docstring)"
    assert len(batches) == 60, (f"sparse_feature_batch was called {len(batches)} times in 60 steps: draw a "
                                f"fresh batch every step")
    first = batches[0]
    assert (first["batch_size"], first["n_features"], first["n_instances"]) == (128, 5, 2), \
        (f"sparse_feature_batch got batch_size={first['batch_size']}, n_features={first['n_features']}, "
         f"n_instances={first['n_instances']}; expected 128, model.n_features = 5, model.n_instances = 2")
    fp = torch.as_tensor(first["feature_probability"], dtype=torch.float32)
    if torch.allclose(fp, torch.tensor(0.7)):
        pytest.fail("sparse_feature_batch got 1 - feature_probability: sparsity semantics swapped. Pass "
                    "feature_probability on unchanged; it already is the chance a feature is present.")
    assert torch.allclose(fp, torch.tensor(0.3)), f"pass feature_probability (0.3) on, not {fp.tolist()}"
    assert not torch.equal(batches[0]["returned"], batches[1]["returned"]), \
        ("the first two steps trained on the same batch: seed one torch.Generator with `seed` before the loop "
         "and pass that same generator to every sparse_feature_batch call (a generator seeded anew every step "
         "draws the same batch again)")
    assert len(loss_calls) == 60, (f"importance_weighted_loss was called {len(loss_calls)} times in 60 steps; "
                                   f"compute the loss of every step with it")
    imp = torch.as_tensor(loss_calls[0]["importance"], dtype=torch.float32)
    same = imp.shape[-1:] == (5,) and torch.allclose(imp, importance.expand(imp.shape))
    assert same, "pass the importance argument on to importance_weighted_loss: the loss ignores importance"
    assert isinstance(losses, list) and len(losses) == 60, \
        f"train_toy_model should return a list with one loss per step (60), got {type(losses).__name__}" \
        + (f" of length {len(losses)}" if hasattr(losses, "__len__") else "")
    assert all(isinstance(v, float) for v in losses), "each loss should be a Python float (use loss.item())"
    assert all(math.isfinite(v) for v in losses), "some losses are NaN or inf"
    assert not torch.equal(model.W.detach(), before), "the model's W did not change: train the model in place"
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < first, f"the loss did not go down (first 10 steps {first:.4f}, last 10 {last:.4f})"


@pytest.mark.exercise("train_toy_model", points=1)
def test_train_uses_adam_lr_and_seed(isolated):
    torch.manual_seed(1)
    start = RefToyModel(5, 2, 1).state_dict()

    def fresh():
        model = RefToyModel(5, 2, 1)
        model.load_state_dict(start)
        return model

    model = fresh()
    before = model.W.detach().clone()
    isolated.train_toy_model(model, 0.5, torch.ones(5), steps=1, batch_size=256, lr=0.05, seed=3)
    step = (model.W.detach() - before).abs()
    # Adam's first step moves every parameter with a non-tiny gradient by almost exactly lr.
    assert torch.allclose(step.max(), torch.tensor(0.05), rtol=0.02), \
        f"one step with lr=0.05 moved W by up to {step.max().item():.4f}; Adam's first step moves each " \
        f"weight by about lr: use torch.optim.Adam(model.parameters(), lr=lr)"
    a = isolated.train_toy_model(fresh(), 0.5, torch.ones(5), steps=5, batch_size=64, seed=3)
    b = isolated.train_toy_model(fresh(), 0.5, torch.ones(5), steps=5, batch_size=64, seed=3)
    c = isolated.train_toy_model(fresh(), 0.5, torch.ones(5), steps=5, batch_size=64, seed=4)
    assert a == b, "two runs with the same seed and the same start gave different losses: seed a " \
                   "torch.Generator with `seed` and pass it to sparse_feature_batch"
    assert a != c, "different seeds gave the same losses: the seed should decide the batches"


def dimensionality_2d(W):
    return loop_dimensionality(W.unsqueeze(0))[0]


@pytest.mark.exercise("train_toy_model", points=3)
def test_train_superposition_appears_with_sparsity(isolated):
    """5 features in 2 dimensions (Elhage et al. 2022), four instances trained together. Instance 0: dense
    features (always present) with importance 0.5^i, so the two most important get orthogonal dimensions
    and the other three are dropped. Instances 1-3: sparse features (present 10% of the time) of equal
    importance: all five are kept, arranged as a pentagon. (A rare run can get stuck with a dead feature,
    so two pentagons out of three are enough.)"""
    torch.manual_seed(0)
    model = RefToyModel(5, 2, 4)
    importance = torch.stack([0.5 ** torch.arange(5.0)] + [torch.ones(5)] * 3)
    p = torch.tensor([1.0, 0.1, 0.1, 0.1])
    isolated.train_toy_model(model, p, importance, steps=1000, batch_size=256, lr=3e-2, seed=0)
    W = model.W.detach()
    norms = W.norm(dim=1)
    hint = ("Check that every step draws a new batch with feature_probability (the chance a feature is present), "
            "weights the loss by importance, clears old gradients (optimizer.zero_grad()) and steps one Adam "
            "optimizer, created once before the loop, on the model's parameters.")
    dense = norms[0]
    assert (dense[:2] > 0.8).all() and (dense[2:] < 0.25).all(), \
        (f"dense features (p=1) should give the 2 most important features norm ~1 and drop the other 3; "
         f"got norms {[round(v, 2) for v in dense.tolist()]}. {hint}")
    cos = torch.dot(W[0, :, 0], W[0, :, 1]) / (dense[0] * dense[1])
    assert abs(cos) < 0.2, f"dense features 0 and 1 should be orthogonal, got cosine {cos:.2f}. {hint}"
    pentagons, report = 0, []
    for k in (1, 2, 3):
        dims = dimensionality_2d(W[k])
        pentagons += bool((norms[k] > 0.5).all() and ((dims - 0.4).abs() < 0.08).all())
        report.append(f"norms {[round(v, 2) for v in norms[k].tolist()]}, dimensionalities "
                      f"{[round(v, 2) for v in dims.tolist()]}")
    assert pentagons >= 2, \
        ("sparse features (p=0.1) should all be represented (norm > 0.5) on a pentagon (dimensionality 2/5 "
         f"each), in at least 2 of 3 instances; got {pentagons}: " + "; ".join(report) + f". {hint}")


# ---------------------------------------------------------------- feature_dimensionality


@pytest.mark.exercise("feature_dimensionality", points=2)
def test_dimensionality_known_shapes(impl):
    zero = torch.zeros(2)
    W = torch.stack([
        pentagon(1.3),  # a regular pentagon: 2/5 each, whatever the radius
        torch.stack([torch.tensor([2.0, 0.0]), torch.tensor([0.0, 0.5]), zero, zero, zero], dim=1),
        torch.stack([torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 0.0]), torch.tensor([0.0, 1.0]), zero, zero], dim=1),
        torch.stack([torch.tensor([1.0, 0.0]), torch.tensor([3.0, 0.0]), zero, zero, zero], dim=1),
    ])  # [4 instances, 2 hidden, 5 features]
    expected = torch.tensor([
        [0.4, 0.4, 0.4, 0.4, 0.4],  # sum of cos^2 over a pentagon = 5/2
        [1.0, 1.0, 0.0, 0.0, 0.0],  # orthogonal: a dimension each; zero columns: 0
        [0.5, 0.5, 1.0, 0.0, 0.0],  # an antipodal pair shares one dimension
        [0.1, 0.9, 0.0, 0.0, 0.0],  # same direction, norms 1 and 3: 1 / (1 + 9) and 9 / (1 + 9)
    ])
    got = call_unmutated(impl.feature_dimensionality, W)
    if isinstance(got, torch.Tensor) and got.shape == (4, 2):
        pytest.fail("You returned one value per hidden dimension: feature i is the column W[k, :, i].")
    got = assert_shape(got, (4, 5), "feature_dimensionality(W) ([n_instances, n_features])")
    if torch.isnan(got).any():
        pytest.fail("NaN for a feature with W_i = 0: guard the division so such a feature gets 0.")
    if abs(got[3, 1].item() - 0.1) < 1e-3:
        pytest.fail("For features (1, 0) and (3, 0) you got 0.1 for the long one: normalize W_i in the "
                    "denominator, (W_i_hat . W_j)^2 with W_i_hat = W_i / ||W_i||.")
    assert_close(got, expected, "feature_dimensionality on hand-made W", atol=1e-4,
                 hint="D_i = ||W_i||^2 / sum_j (W_i_hat . W_j)^2, the sum including j = i.")


@pytest.mark.exercise("feature_dimensionality", points=1)
def test_dimensionality_matches_loop(impl):
    W = torch.randn(3, 4, 7, generator=gen(4))
    W[1, :, 2] = 0
    W[2, :, 5] = 0
    got = call_unmutated(impl.feature_dimensionality, W)
    assert_close(got, loop_dimensionality(W), "feature_dimensionality on a random W", atol=1e-4,
                 hint="Compute each instance on its own: W[k, :, i] is feature i of instance k.")


@pytest.mark.exercise("feature_dimensionality", points=1)
def test_dimensionality_zero_features_are_zero(impl):
    got = impl.feature_dimensionality(torch.zeros(2, 3, 4))
    got = assert_shape(got, (2, 4), "feature_dimensionality(zeros)")
    if not torch.isfinite(got).all():
        pytest.fail("A model that represents nothing gave NaN or inf: a feature with W_i = 0 gets 0.")
    assert (got == 0).all(), f"features with W_i = 0 should get dimensionality 0, got {got.tolist()}"
