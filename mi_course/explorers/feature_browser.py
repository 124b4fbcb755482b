"""Lesson 10's feature browser: search an SAE's features by a top token or by label, page through the
matches, and open one feature's dashboard.

    acts = feature_activations(sae, model, tokens)
    browser = feature_browser(sae, model, acts, other_sae=sae_b, labels=labels)
    browser                              # in a notebook: search box, pages, the selected dashboard
    browser.search.value = "Bridge"      # what typing (and Enter) does
    browser.next_page.click()
    browser.feature.value = 919          # open a feature
    browser.current()["matches"]

A feature matches a token when the token is among the tokens it fires most on (its ``k_tokens`` largest
activations) or among its top logit effects; matches are ranked by how often the token occurs there. A
feature matches a label search when the query is part of its label (``labels`` from
:func:`mi_course.saes.dashboard.label_features`); those are ranked by held-out score. An empty search lists
every feature. Dashboards are built when first opened, from the activations computed once.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import ipywidgets as widgets
import torch

from mi_course.explorers.base import Explorer, check_int, html_bundle
from mi_course.saes.dashboard import (
    FeatureActivations,
    FeatureDashboard,
    FeatureLabels,
    feature_dashboard,
    n_features,
    token_strings,
    top_logit_ids,
)

PAGE_SIZES = (5, 10, 20, 50)
BY_TOKEN, BY_LABEL = "top token", "label"


def _norm(token: str) -> str:
    return token.strip().lower()


def top_tokens_index(sae, model, activations: FeatureActivations, k_tokens: int = 20,
                     k_logits: int = 10) -> list[Counter]:
    """For every feature, how often each (stripped, lower-cased) token string is among the tokens at its
    ``k_tokens`` largest activations, plus once for each of its ``k_logits`` most raised logits."""
    flat_tokens = activations.tokens.reshape(-1)
    logit_ids = top_logit_ids(sae, model, k_logits)
    vocab: dict[int, str] = {}

    def strings(ids: list[int]) -> list[str]:
        missing = [i for i in dict.fromkeys(ids) if i not in vocab]
        vocab.update(zip(missing, token_strings(model, torch.tensor(missing, dtype=torch.long))) if missing else ())
        return [_norm(vocab[i]) for i in ids]

    index = []
    for f in range(activations.d_sae):
        where, values = activations.entries(f)
        top = where[values.topk(min(k_tokens, len(values))).indices]
        index.append(Counter(strings(flat_tokens[top].tolist()) + strings(logit_ids[f].tolist())))
    return index


class FeatureBrowser(Explorer):
    """Controls: ``search`` (Text; applied on Enter), ``search_by`` ("top token" or "label"), ``page_size``,
    ``page`` (1-based), the ``prev_page`` / ``next_page`` buttons, and ``feature`` (a Select of the page's
    features). ``current()`` returns ``query``, ``search_by``, ``matches`` (every matching feature, ranked),
    ``page``, ``n_pages``, ``page_features``, ``feature`` (the open one, or None) and ``dashboard``."""

    def __init__(self, sae, model, activations: FeatureActivations, other_sae=None,
                 labels: FeatureLabels | None = None, release: str | None = None, page_size: int = 10,
                 features: Sequence[int] | None = None, k_tokens: int = 20, **dashboard_kwargs):
        if not isinstance(activations, FeatureActivations):
            raise ValueError(f"activations must be FeatureActivations (feature_activations(sae, model, tokens)), "
                             f"got {type(activations).__name__}")
        d_sae = n_features(sae)
        if activations.d_sae != d_sae:
            raise ValueError(f"the activations hold {activations.d_sae} features but the SAE has d_sae={d_sae}")
        if labels is not None and (not isinstance(labels, FeatureLabels) or len(labels) != d_sae):
            raise ValueError("labels must be FeatureLabels for this SAE (label_features(fit, heldout))")
        if page_size not in PAGE_SIZES:
            raise ValueError(f"page_size must be one of {PAGE_SIZES}, got {page_size!r}")
        self.features = list(range(d_sae)) if features is None else \
            [check_int("feature", f, 0, d_sae - 1) for f in features]
        self.sae, self.model, self.activations = sae, model, activations
        self.dashboard_kwargs = dict(other_sae=other_sae, labels=labels, release=release, **dashboard_kwargs)
        self.labels = labels
        self.index = top_tokens_index(sae, model, activations, check_int("k_tokens", k_tokens, 1, 1000))
        self.label_of = labels.labels() if labels is not None else [None] * d_sae
        self.dashboards: dict[int, FeatureDashboard] = {}
        self._searched: tuple | None = None
        self.matches: list[int] = []

        self.search = widgets.Text(value="", placeholder="a token (Bridge) or a label (praise)",
                                   description="search", continuous_update=False)
        self.search_by = widgets.ToggleButtons(options=[BY_TOKEN, BY_LABEL] if labels is not None else [BY_TOKEN],
                                               value=BY_TOKEN, description="by")
        self.page_size = widgets.Dropdown(options=list(PAGE_SIZES), value=page_size, description="per page")
        self.page = widgets.BoundedIntText(value=1, min=1, max=1, description="page")
        self.prev_page = widgets.Button(description="◀ prev", layout=widgets.Layout(width="80px"))
        self.next_page = widgets.Button(description="next ▶", layout=widgets.Layout(width="80px"))
        self.feature = widgets.Select(options=[], rows=8, description="feature",
                                      layout=widgets.Layout(width="560px"))
        self.prev_page.on_click(lambda _: self._turn(-1))
        self.next_page.on_click(lambda _: self._turn(+1))
        for w in (self.search, self.page, self.page_size):
            w.style.description_width = "60px"
        rows = [widgets.HBox([self.search, self.search_by]),
                widgets.HBox([self.prev_page, self.page, self.next_page, self.page_size]), self.feature]
        self._start([self.search, self.search_by, self.page_size, self.page, self.feature], rows)

    # ------------------------------------------------------------------------------------------ search

    def find(self, query: str, by: str = BY_TOKEN) -> list[int]:
        """The features matching ``query`` (see the module docstring), best first."""
        query = _norm(query)
        if by == BY_LABEL:
            hits = [f for f in self.features if self.label_of[f] is not None and query in self.label_of[f].lower()]
            return sorted(hits, key=lambda f: (-self.labels[f].score, f))
        if not query:
            return list(self.features)
        hits = [f for f in self.features if self.index[f][query] > 0]
        return sorted(hits, key=lambda f: (-self.index[f][query], f))

    def _turn(self, step: int) -> None:
        self.page.value = min(max(self.page.value + step, self.page.min), self.page.max)

    def _option(self, f: int) -> tuple[str, int]:
        tokens = ", ".join(t for t, _ in self.index[f].most_common(4))
        label = f" · {self.label_of[f]}" if self.label_of[f] else ""
        return f"{f}{label} · {tokens}", f

    def _before_render(self) -> None:
        searched = (self.search.value, self.search_by.value)
        if searched != self._searched:
            self.matches = self.find(*searched)
            self._searched = searched
            self.page.value = 1
        n_pages = max(1, math.ceil(len(self.matches) / self.page_size.value))
        self.page.max = n_pages
        self.page.value = min(self.page.value, n_pages)
        start = (self.page.value - 1) * self.page_size.value
        page_features = self.matches[start:start + self.page_size.value]
        keep = self.feature.value if self.feature.value in page_features else None
        options = [self._option(f) for f in page_features]
        if [o[1] for o in self.feature.options] != page_features:
            self.feature.options = options
        self.feature.value = keep if keep is not None else (page_features[0] if page_features else None)

    def dashboard(self, feature: int) -> FeatureDashboard:
        """The feature's dashboard (built on first use)."""
        if feature not in self.dashboards:
            self.dashboards[feature] = feature_dashboard(self.sae, self.model, self.activations, feature,
                                                         **self.dashboard_kwargs)
        return self.dashboards[feature]

    def _render(self):
        start = (self.page.value - 1) * self.page_size.value
        page_features = self.matches[start:start + self.page_size.value]
        feature = self.feature.value
        what = f"{self.search_by.value} {self.search.value.strip()!r}" if self.search.value.strip() else "all"
        state = {"query": self.search.value, "search_by": self.search_by.value, "matches": list(self.matches),
                 "page": self.page.value, "n_pages": self.page.max, "page_features": page_features,
                 "feature": feature, "dashboard": None,
                 "status": f"{len(self.matches)} features match ({what}); page {self.page.value} of {self.page.max}"}
        if feature is None:
            return state, [html_bundle("<p>No feature matches: try another token, or search by label.</p>",
                                       "no feature matches")]
        dash = self.dashboard(feature)
        state["dashboard"] = dash
        return state, [html_bundle(dash.to_html(), f"feature {feature}")]


def feature_browser(sae, model, activations: FeatureActivations, other_sae=None, labels: FeatureLabels | None = None,
                    release: str | None = None, page_size: int = 10, features: Sequence[int] | None = None,
                    **dashboard_kwargs) -> FeatureBrowser:
    """Browse the features of ``sae`` on ``activations`` (see :class:`FeatureBrowser`); ``features``
    limits the browser to some features, further keyword arguments go to
    :func:`~mi_course.saes.dashboard.feature_dashboard`.

    Raises:
        ValueError: if ``activations`` are not FeatureActivations of this SAE, ``labels`` are not
            FeatureLabels of it, ``page_size`` is not one of (5, 10, 20, 50), or a feature is out of range.
    """
    return FeatureBrowser(sae, model, activations, other_sae, labels, release, page_size, features,
                          **dashboard_kwargs)
