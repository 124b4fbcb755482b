"""The logit lens, interactively: pick a text, a layer and a position; see that layer's top guesses for the
next token there, and how far each layer's guess is from the model's output (KL to the final layer).

    explorer = logit_lens_explorer(model, "Clara Thorne opened the old gate, and ...")
    explorer                      # in a notebook: the text box, sliders and the view
    explorer.layer.value = 2      # what a learner's slider does
    explorer.current()["top"]     # the rows of the table on screen

All numbers come from the canonical :func:`mi_course.language.logit_lens.logit_lens` and
:func:`~mi_course.language.logit_lens.kl_to_final`; the lens runs once per text, a slider only selects.
"""

from __future__ import annotations

import html

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
    show_token,
)
from mi_course.language.lens_plots import plot_kl_by_layer, row_labels
from mi_course.language.logit_lens import kl_to_final, logit_lens

MAX_K = 20


def layer_name(layer: int, n_layers: int) -> str:
    """Row ``layer`` of the lens in words (row 0: the embeddings; the last row: the model's output)."""
    if layer == 0:
        return "the embeddings (row 0)"
    return f"after block {layer - 1}" + (" = the model's output" if layer == n_layers else "")


class LogitLensExplorer(Explorer):
    """Controls: ``text`` (Text; a new text is read on Enter), ``layer`` (IntSlider, 0 = embeddings ..
    n_layers = output), ``position`` (IntSlider over the text's tokens, BOS = 0), ``k`` (how many guesses).
    ``current()`` returns ``text``, ``str_tokens``, ``layer``, ``position``, ``input`` (the token there),
    ``target`` (the actual next token, None at the last position), ``top`` (``k`` dicts: rank, token,
    token_id, prob), ``kl`` (KL(final || layer) in nats at this position, one float per layer) and
    ``kl_here`` (the selected layer's)."""

    def __init__(self, model, text: str = DEFAULT_TEXT, layer: int | None = None, position: int | None = None,
                 k: int = 5):
        check_language_model(model)
        self.model = model
        n_layers = model.cfg.n_layers
        self._lens_text: str | None = None
        self._read(check_text(model, text))
        n_pos = len(self._str_tokens)
        layer = n_layers if layer is None else check_int("layer", layer, 0, n_layers)
        position = n_pos - 1 if position is None else check_int("position", position, -n_pos, n_pos - 1) % n_pos
        k = check_int("k", k, 1, min(MAX_K, model.cfg.d_vocab_out))
        wide = widgets.Layout(width="95%")
        self.text = widgets.Text(value=text, description="text", continuous_update=False, layout=wide)
        self.layer = widgets.IntSlider(value=layer, min=0, max=n_layers, description="layer",
                                       continuous_update=False)
        self.position = widgets.IntSlider(value=position, min=0, max=n_pos - 1, description="position",
                                          continuous_update=False, layout=wide)
        self.k = widgets.IntSlider(value=k, min=1, max=min(MAX_K, model.cfg.d_vocab_out), description="top k",
                                   continuous_update=False)
        self._start([self.text, self.layer, self.k, self.position],
                    rows=[self.text, widgets.HBox([self.layer, self.k]), self.position])

    def _read(self, text: str) -> None:
        """Run the lens on a new text (once per text: sliders only pick rows and columns)."""
        if text == self._lens_text:
            return
        tokens = self.model.to_tokens(text)  # [1, pos], BOS first, as in lesson 07
        lens = logit_lens(self.model, tokens)  # [n_layers + 1, 1, pos, d_vocab]
        self._lens = lens[:, 0]
        self._kl = kl_to_final(lens)[:, 0].float().cpu()  # [n_layers + 1, pos]
        self._tokens = tokens[0].tolist()
        self._str_tokens = self.model.to_str_tokens(tokens[0])
        self._lens_text = text

    def _before_render(self) -> None:
        self._read(check_text(self.model, self.text.value))
        last = len(self._str_tokens) - 1
        if self.position.max != last:  # a new text: keep the position if it still exists
            self.position.value = min(self.position.value, last)
            self.position.max = last

    def _render(self):
        n_layers = self.model.cfg.n_layers
        layer, pos, k = self.layer.value, self.position.value, self.k.value
        probs = self._lens[layer, pos].float().softmax(dim=-1)
        top = probs.topk(k)
        ids = top.indices.tolist()
        target_id = self._tokens[pos + 1] if pos + 1 < len(self._tokens) else None
        rows = [{"rank": r, "token": self.model.to_single_str_token(i), "token_id": i, "prob": float(p)}
                for r, (i, p) in enumerate(zip(ids, top.values.tolist()))]
        state = {"text": self._lens_text, "str_tokens": list(self._str_tokens), "layer": layer, "position": pos,
                 "input": self._str_tokens[pos],
                 "target": None if target_id is None else self._str_tokens[pos + 1], "top": rows,
                 "kl": self._kl[:, pos].tolist(), "kl_here": float(self._kl[layer, pos])}
        state["status"] = (f"layer {layer}: {layer_name(layer, n_layers)}; position {pos}: input "
                           f"{show_token(state['input'])}, actual next token {show_token(state['target'])}")

        context = " ".join(self._str_tokens[max(0, pos - 8):pos + 1])
        table = html_table(["rank", "guess", "probability", ""],
                           [(r["rank"], show_token(r["token"]), f"{r['prob']:.3f}",
                             "= actual next" if r["token_id"] == target_id else "") for r in rows],
                           bold_rows=[r["rank"] for r in rows if r["token_id"] == target_id])
        header = (f"<div>context: <code>...{html.escape(context)}</code> &rarr; top {k} guesses at "
                  f"{html.escape(layer_name(layer, n_layers))}, KL to the output {state['kl_here']:.3f} nats</div>")

        fig = plot_kl_by_layer({f"position {pos} ({state['input']!r})": self._kl[:, pos]},
                               title="KL(final || layer) at this position")
        ax = fig.axes[0]
        ax.plot([layer], [state["kl_here"]], "o", ms=12, mfc="none", mec="red", mew=2, label="selected layer")
        ax.legend(fontsize=8)
        ax.set_xticks(range(n_layers + 1), row_labels(n_layers + 1))
        self.figure = fig
        return state, [html_bundle(header + table, f"top {k}: {[r['token'] for r in rows]}"), figure_bundle(fig)]


def logit_lens_explorer(model, text: str = DEFAULT_TEXT, layer: int | None = None, position: int | None = None,
                        k: int = 5) -> LogitLensExplorer:
    """An interactive logit lens on ``text`` (see :class:`LogitLensExplorer`). ``layer`` defaults to the
    last row (the model's output), ``position`` to the last token (negative counts from the end).

    Raises:
        ValueError: for an empty text or one longer than the model's context, a layer outside
            0..n_layers, a position outside the text, or k outside 1..20.
    """
    return LogitLensExplorer(model, text, layer, position, k)
