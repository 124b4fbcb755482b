"""The lesson 08 figure helpers (mi_course.superposition) run on the shapes the lesson uses and reject bad input."""

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from mi_course import superposition as sp  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def visible_axes(fig):
    return [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]


def test_regular_polygon():
    pent = sp.regular_polygon(5, radius=2.0)
    assert pent.shape == (2, 5)
    assert torch.allclose(pent.norm(dim=0), torch.full((5,), 2.0))
    assert torch.allclose(pent[:, 0], torch.tensor([2.0, 0.0]))
    cos = (pent[:, 0] @ pent[:, 1]) / 4
    assert math.isclose(cos.item(), math.cos(2 * math.pi / 5), abs_tol=1e-6)
    assert torch.allclose(sp.regular_polygon(2), torch.tensor([[1.0, -1.0], [0.0, 0.0]]), atol=1e-6)
    with pytest.raises(ValueError):
        sp.regular_polygon(0)


def test_plot_features_2d():
    W = torch.randn(3, 2, 5, requires_grad=True)  # a parameter with grad must be accepted
    fig = sp.plot_features_2d(W, ["a", "b", "c"], importance=0.9 ** torch.arange(5.0))
    assert isinstance(fig, Figure) and len(visible_axes(fig)) == 3
    assert [ax.get_title() for ax in visible_axes(fig)] == ["a", "b", "c"]
    assert len(visible_axes(sp.plot_features_2d(torch.zeros(7, 2, 4)))) == 7  # two rows, zero weights


@pytest.mark.parametrize("kwargs, words", [
    (dict(W=torch.randn(2, 3, 5)), "2-D"),
    (dict(W=torch.randn(2, 5)), "3 dimensions"),
    (dict(W=torch.randn(2, 2, 5), titles=["only one"]), "titles"),
    (dict(W=torch.randn(2, 2, 5), importance=torch.ones(4)), "importance"),
])
def test_plot_features_2d_rejects(kwargs, words):
    with pytest.raises(ValueError, match=words):
        sp.plot_features_2d(**kwargs)


def test_plot_feature_batch():
    x = torch.rand(100, 3, 8) * (torch.rand(100, 3, 8) < 0.3)
    fig = sp.plot_feature_batch(x, ["S=0", "S=0.7", "S=0.95"], max_examples=20)
    assert len(visible_axes(fig)) == 3
    with pytest.raises(ValueError):
        sp.plot_feature_batch(torch.rand(10, 8))


def test_plot_outputs():
    x = torch.eye(5)[:3]
    fig = sp.plot_outputs(x, {"model": x * 0.5, "other": x}, ["a", "b", "c"])
    assert len(visible_axes(fig)) == 3
    with pytest.raises(ValueError, match="shape"):
        sp.plot_outputs(x, {"model": torch.zeros(3, 4)})


def test_plot_dimensionality():
    p = torch.logspace(0, -2, 4)
    W = torch.randn(4, 3, 10)
    dims = torch.rand(4, 10)
    fig = sp.plot_dimensionality(p, W, dims)
    assert isinstance(fig, Figure)
    with pytest.raises(ValueError, match="disagree"):
        sp.plot_dimensionality(p[:3], W, dims)
    with pytest.raises(ValueError, match="disagree"):
        sp.plot_dimensionality(p, W, dims[:, :9])
    with pytest.raises(ValueError, match="feature_probability"):
        sp.plot_dimensionality(torch.tensor([1.0, 0.5, 0.0, 0.1]), W, dims)


def test_plot_interference():
    fig = sp.plot_interference(torch.randn(2, 2, 5), ["dense", "sparse"])
    assert [ax.get_title() for ax in visible_axes(fig)] == ["dense", "sparse"]
    assert len(visible_axes(sp.plot_interference(torch.randn(1, 5, 40)))) == 1
    with pytest.raises(ValueError):
        sp.plot_interference(torch.randn(5, 40))


def test_helpers_do_not_ship_exercise_solutions():
    exercises = {"ToyModel", "sparse_feature_batch", "importance_weighted_loss", "train_toy_model",
                 "feature_dimensionality"}
    assert not exercises & set(vars(sp)), "exercise names belong to the learner's lesson file"
