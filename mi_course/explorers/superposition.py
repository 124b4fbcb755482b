"""The toy model of superposition, interactively: a sparsity slider (and one for how fast importance decays
over the features) redraws the trained model's features as arrows in its 2-D hidden space.

    explorer = superposition_explorer(ToyModel, train_toy_model)   # your lesson 08 answers
    explorer                          # in a notebook: the sliders and the arrows
    explorer.sparsity.value = 0.9     # what a learner's slider does
    explorer.current()["n_represented"]

It trains *your* ``ToyModel`` with *your* ``train_toy_model``: one model instance per sparsity of the grid,
all in one run (the instances never interact), once per importance decay, the first time that decay is
shown (about a second on one CPU thread). After that, moving a slider only redraws. The arrows are drawn by
:func:`mi_course.superposition.plot_features_2d`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import ipywidgets as widgets
import torch

from mi_course.explorers.base import Explorer, check_int, figure_bundle, html_bundle, html_table
from mi_course.superposition import plot_features_2d

SPARSITIES = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98)
# Not 1.0: with equal importance the dense model takes far more than a slider's 1000 steps to settle on 2 of
# its 5 features (any 2 would do), so it would show 3 or 4 half-trained arrows.
DECAYS = (0.5, 0.7, 0.8, 0.9)
MIN_NORM = 0.5  # a feature counts as represented when its arrow is longer than this (1 = fully)


def _grid(name: str, values, low: float, high: float, closed_high: bool) -> tuple[float, ...]:
    try:
        grid = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a sequence of numbers, got {values!r}") from None
    inside = all(low <= v <= high if closed_high else low <= v < high for v in grid)
    if not grid or not inside or any(math.isnan(v) for v in grid):
        raise ValueError(f"{name} must be numbers in [{low}, {high}{']' if closed_high else ')'}, got {list(grid)}")
    if len(set(grid)) != len(grid):
        raise ValueError(f"{name} has repeated values: {list(grid)}")
    return tuple(sorted(grid))


def _pick(name: str, value, grid: Sequence[float]) -> float:
    try:
        match = [g for g in grid if math.isclose(g, float(value), abs_tol=1e-9)]
    except (TypeError, ValueError):
        match = []
    if not match:
        raise ValueError(f"{name} must be one of the grid's values {list(grid)}, got {value!r}")
    return match[0]


class SuperpositionExplorer(Explorer):
    """Controls: ``sparsity`` and ``decay`` (SelectionSliders over the grids; importance of feature i is
    ``decay ** i``). ``current()`` returns ``sparsity``, ``decay``, ``importance``, ``W`` (``[2,
    n_features]``, column i = feature i's arrow), ``b_final``, ``norms`` (arrow lengths), ``represented``
    (norm > 0.5, per feature) and ``n_represented``. ``trained`` maps each decay trained so far to its
    ``(W, b_final)`` for every sparsity (``[n_sparsities, 2, n_features]``, ``[n_sparsities, n_features]``)."""

    def __init__(self, toy_model: Callable, train: Callable, sparsities: Sequence[float] = SPARSITIES,
                 decays: Sequence[float] = DECAYS, sparsity: float = 0.0, decay: float = 0.9, n_features: int = 5,
                 steps: int = 1000, batch_size: int = 512, lr: float = 2e-2, seed: int = 0):
        if not callable(toy_model) or not callable(train):
            raise ValueError("pass your lesson 08 ToyModel class and train_toy_model function: "
                             "superposition_explorer(ToyModel, train_toy_model)")
        self.toy_model, self.train = toy_model, train
        self.sparsities = _grid("sparsities", sparsities, 0.0, 1.0, closed_high=False)  # S = 1: never present
        self.decays = _grid("decays", decays, 0.0, 1.0, closed_high=True)
        if 0.0 in self.decays:
            raise ValueError(f"decays must be above 0 (importance decay ** i), got {list(self.decays)}")
        self.n_features = check_int("n_features", n_features, 2, 12)
        self.steps = check_int("steps", steps, 1, 100_000)
        self.batch_size = check_int("batch_size", batch_size, 1, 1 << 16)
        if not (isinstance(lr, (int, float)) and lr > 0):
            raise ValueError(f"lr must be a positive number, got {lr!r}")
        self.lr, self.seed = float(lr), seed
        self.trained: dict[float, tuple[torch.Tensor, torch.Tensor]] = {}
        self._seconds: dict[float, float] = {}
        self.sparsity = widgets.SelectionSlider(options=[(f"{s:g}", s) for s in self.sparsities],
                                                value=_pick("sparsity", sparsity, self.sparsities),
                                                description="sparsity S")
        self.decay = widgets.SelectionSlider(options=[(f"{d:g}", d) for d in self.decays],
                                             value=_pick("decay", decay, self.decays),
                                             description="importance decay")
        self.decay.style.description_width = self.sparsity.style.description_width = "120px"
        self._start([self.sparsity, self.decay])

    def importance(self, decay: float) -> torch.Tensor:
        return decay ** torch.arange(float(self.n_features))

    def _train(self, decay: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Train one model instance per sparsity at this decay (once; cached)."""
        if decay in self.trained:
            return self.trained[decay]
        start = time.perf_counter()
        n = len(self.sparsities)
        with torch.random.fork_rng(devices=[]):  # the same start for every decay; the learner's RNG untouched
            torch.manual_seed(self.seed)
            model = self.toy_model(self.n_features, 2, n)
        with torch.enable_grad():  # a notebook may have switched gradients off
            self.train(model, 1 - torch.tensor(self.sparsities), self.importance(decay), steps=self.steps,
                       batch_size=self.batch_size, lr=self.lr, seed=self.seed)
        W, b = getattr(model, "W", None), getattr(model, "b_final", None)
        if not isinstance(W, torch.Tensor) or tuple(W.shape) != (n, 2, self.n_features):
            raise ValueError(f"ToyModel({self.n_features}, 2, {n}).W should be a tensor of shape "
                             f"[{n}, 2, {self.n_features}], got {getattr(W, 'shape', type(W).__name__)}")
        W = W.detach().float().cpu().clone()
        b = b.detach().float().cpu().clone() if isinstance(b, torch.Tensor) else torch.zeros(n, self.n_features)
        if not torch.isfinite(W).all():
            raise ValueError(f"training at decay {decay:g} gave non-finite weights (NaN or inf): check "
                             f"train_toy_model, or lower lr (now {self.lr:g})")
        self.trained[decay] = (W, b)
        self._seconds[decay] = time.perf_counter() - start
        return self.trained[decay]

    def _render(self):
        sparsity, decay = self.sparsity.value, self.decay.value
        W_all, b_all = self._train(decay)
        k = self.sparsities.index(sparsity)
        W, b = W_all[k], b_all[k]  # [2, n_features], [n_features]
        importance = self.importance(decay)
        norms = W.norm(dim=0)
        represented = (norms > MIN_NORM).tolist()
        n_rep = sum(represented)
        state = {"sparsity": sparsity, "decay": decay, "feature_probability": 1 - sparsity,
                 "importance": importance.tolist(), "W": W.clone(), "b_final": b.clone(), "norms": norms.tolist(),
                 "represented": represented, "n_represented": n_rep,
                 "status": (f"S = {sparsity:g} (a feature is present in {100 * (1 - sparsity):.0f}% of inputs): "
                            f"{n_rep} of {self.n_features} features represented in 2 dimensions; "
                            f"{len(self.sparsities)} models trained at decay {decay:g} in "
                            f"{self._seconds[decay]:.1f} s")}
        table = html_table(["feature", "importance", "arrow length", "bias", "represented"],
                           [(i, f"{importance[i]:.2f}", f"{norms[i]:.2f}", f"{b[i]:+.2f}", "yes" if r else "no")
                            for i, r in enumerate(represented)])
        fig = plot_features_2d(W[None], [f"S = {sparsity:g}, importance {decay:g}^i"], importance=importance,
                               size=3.6)
        ax = fig.axes[0]
        for i, (x, y) in enumerate(W.T.tolist()):  # number each arrow, just beyond its tip
            if represented[i]:
                length = float(norms[i])
                ax.annotate(str(i), (x, y), xytext=(8 * x / length, 8 * y / length), textcoords="offset points",
                            ha="center", va="center", fontsize=8)
        self.figure = fig
        return state, [figure_bundle(fig), html_bundle(table, f"{n_rep} of {self.n_features} represented")]


def superposition_explorer(toy_model: Callable, train: Callable, sparsities: Sequence[float] = SPARSITIES,
                           decays: Sequence[float] = DECAYS, sparsity: float = 0.0, decay: float = 0.9,
                           n_features: int = 5, steps: int = 1000, batch_size: int = 512, lr: float = 2e-2,
                           seed: int = 0) -> SuperpositionExplorer:
    """A sparsity slider for the toy model of superposition (see :class:`SuperpositionExplorer`):
    ``n_features`` features in 2 dimensions, trained with ``train(model, 1 - sparsities, importance,
    steps=, batch_size=, lr=, seed=)`` on ``toy_model(n_features, 2, len(sparsities))``.

    Raises:
        ValueError: if ``toy_model`` or ``train`` is not callable, a grid value is out of range
            (sparsity in [0, 1), decay in (0, 1]), ``sparsity`` or ``decay`` is not on its grid, or the
            trained ``W`` does not have the shape ``[n_sparsities, 2, n_features]``.
    """
    return SuperpositionExplorer(toy_model, train, sparsities, decays, sparsity, decay, n_features, steps,
                                 batch_size, lr, seed)
