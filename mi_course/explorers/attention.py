"""Attention heads, interactively: pick a layer, a head and a text; see that head's attention pattern on the
text and its scores (previous-token, induction, duplicate-token), with its rank among all heads.

    explorer = attention_explorer(model, "Clara Thorne opened the old gate, and the dog of Clara Thorne ran in.")
    explorer                      # in a notebook: the sliders, the text box and the view
    explorer.head.value = 2       # what a learner's slider does
    explorer.current()["pattern"] # [query, key], the pattern on screen

The scores are the canonical ones of :mod:`mi_course.language.induction`: the previous-token score on the
text itself, and the previous-token, induction and duplicate-token scores on repeated random tokens
``[bos, r, r]`` (computed once, when the explorer is built). The model runs once per text.
"""

from __future__ import annotations

import ipywidgets as widgets

from mi_course.explorers.base import (
    DEFAULT_TEXT,
    Explorer,
    check_int,
    check_language_model,
    check_text,
    figure_bundle,
    html_bundle,
    html_table,
)
from mi_course.language.attention_plots import plot_attention_patterns
from mi_course.language.induction import (
    induction_scores_from_cache,
    prev_token_scores_from_cache,
    repeated_random_tokens,
    stripe_scores_from_cache,
)

SCORE_NOTES = {
    "previous-token (this text)": "mean attention from each token to the one before it, on the text above",
    "previous-token (random)": "the same on repeated random tokens",
    "induction (random)": "second copy: attention to the token after the earlier occurrence of the current one",
    "duplicate-token (random)": "second copy: attention to the earlier occurrence of the current token itself",
}


def _patterns(model, tokens):
    """A cache of every layer's attention pattern on ``tokens`` (nothing else is kept)."""
    _, cache = model.run_with_cache(tokens, names_filter=lambda name: name.endswith("hook_pattern"))
    return cache


def repeated_token_scores(model, seq_len: int = 25, batch: int = 8, seed: int = 0) -> dict:
    """``{name: [n_layers, n_heads]}`` on ``repeated_random_tokens(model, seq_len, batch, seed)``: the
    previous-token, induction and duplicate-token scores (the last: second-copy query q to key q - seq_len,
    the same token one copy earlier)."""
    cache = _patterns(model, repeated_random_tokens(model, seq_len, batch, seed))
    return {"previous-token (random)": prev_token_scores_from_cache(cache).float().cpu(),
            "induction (random)": induction_scores_from_cache(cache, seq_len).float().cpu(),
            "duplicate-token (random)": stripe_scores_from_cache(cache, offset=seq_len, first_query=seq_len + 1,
                                                                 n_layers=model.cfg.n_layers).float().cpu()}


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


class AttentionExplorer(Explorer):
    """Controls: ``layer`` and ``head`` (IntSliders), ``text`` (Text; a new text is read on Enter).
    ``current()`` returns ``text``, ``str_tokens``, ``layer``, ``head``, ``pattern`` (a ``[query, key]``
    CPU tensor, rows summing to 1), ``scores`` (``{name: this head's score}``) and ``ranks`` (``{name: 1 =
    the highest of all heads}``). ``all_scores`` holds every head's scores, ``{name: [n_layers, n_heads]}``."""

    def __init__(self, model, text: str = DEFAULT_TEXT, layer: int = 0, head: int = 0, seq_len: int | None = None,
                 batch: int = 8, seed: int = 0):
        check_language_model(model)
        self.model = model
        cfg = model.cfg
        layer = check_int("layer", layer, 0, cfg.n_layers - 1)
        head = check_int("head", head, 0, cfg.n_heads - 1)
        longest = (cfg.n_ctx - 1) // 2
        seq_len = min(25, longest) if seq_len is None else check_int("seq_len", seq_len, 2, longest)
        self._text_read: str | None = None
        self._read(check_text(model, text))
        self._random_scores = repeated_token_scores(model, seq_len, check_int("batch", batch, 1, 1024), seed)
        self.layer = widgets.IntSlider(value=layer, min=0, max=cfg.n_layers - 1, description="layer",
                                       continuous_update=False)  # redraw on release, not at every head passed
        self.head = widgets.IntSlider(value=head, min=0, max=cfg.n_heads - 1, description="head",
                                      continuous_update=False)
        self.text = widgets.Text(value=text, description="text", continuous_update=False,
                                 layout=widgets.Layout(width="95%"))
        self._start([self.layer, self.head, self.text], rows=[widgets.HBox([self.layer, self.head]), self.text])

    @property
    def all_scores(self) -> dict:
        return {"previous-token (this text)": self._text_prev, **self._random_scores}

    def _read(self, text: str) -> None:
        if text == self._text_read:
            return
        tokens = self.model.to_tokens(text)  # [1, pos], BOS first, as in lesson 06
        cache = _patterns(self.model, tokens)
        self._pattern = [cache["pattern", layer][0].float().cpu() for layer in range(self.model.cfg.n_layers)]
        self._text_prev = (prev_token_scores_from_cache(cache).float().cpu() if tokens.shape[1] > 1
                           else None)  # one token (BOS alone) has no previous token
        self._str_tokens = self.model.to_str_tokens(tokens[0])
        self._text_read = text

    def _before_render(self) -> None:
        self._read(check_text(self.model, self.text.value))

    def _render(self):
        layer, head = self.layer.value, self.head.value
        pattern = self._pattern[layer][head]  # [query, key]
        scores, ranks = {}, {}
        for name, table in self.all_scores.items():
            if table is None:
                continue
            scores[name] = float(table[layer, head])
            ranks[name] = int((table > table[layer, head]).sum()) + 1
        n_heads = self.model.cfg.n_layers * self.model.cfg.n_heads
        state = {"text": self._text_read, "str_tokens": list(self._str_tokens), "layer": layer, "head": head,
                 "pattern": pattern.clone(), "scores": scores, "ranks": ranks,
                 "status": f"head {layer}.{head} on {len(self._str_tokens)} tokens"}
        table = html_table(["score", "this head", "rank", "what it measures"],
                           [(name, f"{value:.3f}", f"{_ordinal(ranks[name])} of {n_heads}", SCORE_NOTES[name])
                            for name, value in scores.items()])

        n = len(self._str_tokens)
        fig = plot_attention_patterns(pattern[None, None], self._str_tokens, size=min(7.0, 2.5 + 0.12 * n),
                                      label_every=1 if n <= 48 else None)
        fig.axes[0].set_title(f"head {layer}.{head}: row = query, column = key", fontsize=10)
        self.figure = fig
        return state, [html_bundle(f"<div>scores of head {layer}.{head}</div>" + table,
                                   str(scores)), figure_bundle(fig)]


def attention_explorer(model, text: str = DEFAULT_TEXT, layer: int = 0, head: int = 0, seq_len: int | None = None,
                       batch: int = 8, seed: int = 0) -> AttentionExplorer:
    """An interactive view of one attention head at a time on ``text`` (see :class:`AttentionExplorer`).
    The random-token scores use ``repeated_random_tokens(model, seq_len, batch, seed)`` (``seq_len``
    defaults to 25, or less if the context is shorter).

    Raises:
        ValueError: for an empty text or one longer than the model's context, or a layer or head that the
            model does not have.
    """
    return AttentionExplorer(model, text, layer, head, seq_len, batch, seed)
