"""What every explorer shares: controls, a status line, an ``Output`` with the rendered view, and a record
of what is shown.

An explorer is a small object, not a widget subclass: its controls are attributes (``explorer.layer``,
``explorer.text`` ...), so code and tests can drive it exactly as a learner's mouse does
(``explorer.layer.value = 2``), and ``explorer.current()`` returns the numbers on screen. Displaying the
object (the last line of a cell) shows ``explorer.widget``, a ``VBox`` of the controls and the view.

The view is written into the ``Output`` widget's ``outputs`` directly (a PNG of the figure, an HTML table)
instead of through ``with output: display(...)``: that works the same in JupyterLab, in Colab, in an
executed notebook's saved widget state, and headless, where no kernel captures output.
"""

from __future__ import annotations

import base64
import html
import io
import operator
import sys
from collections.abc import Sequence
from typing import Any

import ipywidgets as widgets
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

# every word is in the lite vocabulary; the repeated name gives induction heads something to do
DEFAULT_TEXT = "Clara Thorne opened the old gate, and the dog of Clara Thorne ran in."


def enable_colab_widgets() -> None:
    """Colab renders ipywidgets 8 only through its custom widget manager; elsewhere this does nothing."""
    if "google.colab" not in sys.modules:
        return
    try:
        from google.colab import output

        output.enable_custom_widget_manager()
    except Exception:  # an older or changed Colab: the widgets may still render, so never fail here
        pass


def figure_bundle(fig: Figure, dpi: int = 90) -> dict:
    """A display_data output holding ``fig`` as a PNG. The figure is closed: explorers draw with pyplot, and
    an open figure would be shown a second time by the inline backend at the end of the cell."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    png = base64.b64encode(buffer.getvalue()).decode("ascii")
    return {"output_type": "display_data", "metadata": {},
            "data": {"image/png": png, "text/plain": f"<Figure {fig.get_figwidth():.1f}x{fig.get_figheight():.1f} in>"}}


def html_bundle(markup: str, plain: str = "") -> dict:
    return {"output_type": "display_data", "metadata": {}, "data": {"text/html": markup, "text/plain": plain}}


def html_table(header: Sequence[str], rows: Sequence[Sequence[Any]], bold_rows: Sequence[int] = ()) -> str:
    """A small HTML table; every cell is escaped (tokens can hold ``<``, ``&``, quotes)."""
    def cell(tag: str, value: Any, bold: bool) -> str:
        text = html.escape(str(value))
        return f"<{tag} style='padding:1px 8px;text-align:left'>{'<b>' + text + '</b>' if bold else text}</{tag}>"

    head = "".join(cell("th", h, False) for h in header)
    body = "".join("<tr>" + "".join(cell("td", v, i in bold_rows) for v in row) + "</tr>"
                   for i, row in enumerate(rows))
    return f"<table style='border-collapse:collapse;font-size:90%'><tr>{head}</tr>{body}</table>"


def show_token(token: str | None) -> str:
    """A token as the learner should read it: quoted, so spaces and empty strings are visible."""
    return "(none: last position)" if token is None else repr(token)


def check_int(name: str, value: Any, low: int, high: int) -> int:
    """``value`` as an int in ``low..high`` (both included), or a ValueError that says what was expected."""
    try:  # ints, numpy ints and 0-d integer tensors have __index__; floats and strings do not
        index = None if isinstance(value, bool) else operator.index(value)
    except TypeError:
        index = None
    if index is None:
        raise ValueError(f"{name} must be an int in {low}..{high}, got {value!r}")
    value = index
    if not low <= value <= high:
        raise ValueError(f"{name} must be in {low}..{high}, got {value}")
    return value


def check_text(model, text: Any) -> str:
    """A text the model can read: a non-empty string whose tokens (BOS included) fit the context."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"text must be a non-empty string, got {text!r}")
    n_tokens = model.to_tokens(text, truncate=False).shape[-1]  # to_tokens would silently cut at n_ctx
    if n_tokens > model.cfg.n_ctx:
        raise ValueError(f"the text has {n_tokens} tokens (BOS included), more than the model's context of "
                         f"{model.cfg.n_ctx}: shorten it")
    return text


def check_language_model(model) -> None:
    cfg = getattr(model, "cfg", None)
    if cfg is None or not hasattr(cfg, "n_layers") or not hasattr(model, "to_tokens"):
        raise ValueError(f"expected a TransformerLens language model (e.g. mi_course.load_model('lm')), got "
                         f"{type(model).__name__}")


class Explorer:
    """Controls + a status line + an ``Output``; subclasses implement :meth:`_render` and call
    :meth:`_start` once their controls exist.

    ``_render()`` returns ``(state, outputs)``: the dict :meth:`current` hands out and the display_data
    outputs to show. When a control changes, the view is redrawn; a failure there (a bad text typed in, a
    learner's function that raises) is shown in the status line and the last good view stays, since an
    exception inside a widget callback would only reach the kernel's log."""

    def _start(self, controls: Sequence[widgets.Widget], rows: Sequence[widgets.Widget] | None = None) -> None:
        """Draw the first view, then redraw whenever one of ``controls`` changes value. ``rows`` lays the
        controls out (default: one per row)."""
        self.status = widgets.HTML()
        self.output = widgets.Output()
        self.widget = widgets.VBox([*(controls if rows is None else rows), self.status, self.output])
        self._state: dict = {}
        self._quiet = False
        self.refresh(raise_errors=True)  # bad arguments fail when the explorer is built, not later
        for control in controls:
            control.observe(self._on_change, names="value")
        enable_colab_widgets()

    def _render(self) -> tuple[dict, list[dict]]:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def _before_render(self) -> None:
        """Hook for adjusting controls (e.g. a slider's range after a new text) before drawing."""

    def _on_change(self, change) -> None:
        if not self._quiet:
            self.refresh()

    def refresh(self, raise_errors: bool = False) -> None:
        """Recompute and redraw what the controls select now."""
        try:
            self._quiet = True  # adjusting one control from another must not redraw halfway
            try:
                self._before_render()
            finally:
                self._quiet = False
            state, outputs = self._render()
        except Exception as err:
            if raise_errors:
                raise
            self.status.value = (f"<span style='color:#b00'>{html.escape(type(err).__name__)}: "
                                 f"{html.escape(str(err))}</span> (the view below is unchanged)")
            self.error = err
            return
        self.error = None
        self._state = state
        self.status.value = html.escape(state.get("status", ""))
        self.output.outputs = tuple(outputs)

    def current(self) -> dict:
        """What the view shows now, as plain Python values and tensors (a copy)."""
        return dict(self._state)

    def _repr_mimebundle_(self, **kwargs):
        enable_colab_widgets()
        return self.widget._repr_mimebundle_(**kwargs)
