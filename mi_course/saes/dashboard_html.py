"""Feature dashboards and text views as self-contained HTML: inline CSS, inline SVG, tooltips in ``title``
attributes. Nothing is fetched (no CDN, no script), so the same markup shows offline in JupyterLab, Colab
and VS Code, and :func:`page` makes it one standalone file.

Every token is escaped, and whitespace is made visible: a newline shows as ``↵``, a four-space indent as
``⇥``, other spaces inside a token as ``·`` only when the token is nothing but spaces.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the data classes live in dashboard.py, which imports this module
    from mi_course.saes.dashboard import Example, FeatureDashboard, Histogram, IntervalExamples, TextView

SHADE = (255, 120, 0)  # activation colour (orange); the alpha is the activation over the feature's scale
POSITIVE, NEGATIVE = "#2a7ab9", "#c0392b"

# scoped under .mid so that a notebook's other outputs keep their own styles
STYLE = """<style>
.mid{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;font-size:13px;color:#222;background:#fff;
padding:8px;max-width:980px;line-height:1.5}
.mid h3{font-size:15px;margin:2px 0 6px 0}.mid h4{font-size:13px;margin:10px 0 4px 0;color:#444}
.mid .row{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
.mid table{border-collapse:collapse;font-size:12px}.mid td,.mid th{padding:1px 6px;text-align:left}
.mid .num{text-align:right;font-variant-numeric:tabular-nums}
.mid .ctx{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;white-space:nowrap;overflow-x:auto;
margin:1px 0}
.mid .t{white-space:pre;padding:0 1px;margin-right:2px;border-radius:2px}
.mid .m{outline:1.5px solid #000;font-weight:bold}
.mid .v{color:#666;display:inline-block;min-width:4.5em;font-size:11px}
.mid .note{color:#666;font-size:11px}
</style>"""


def visible(token: str) -> str:
    """A token as text a reader can see: newlines as ↵, indentation as ⇥, a bare space as ·."""
    shown = token.replace("\n", "↵").replace("    ", "⇥").replace("\t", "⇥")
    if shown and not shown.strip():
        shown = shown.replace(" ", "·")
    return shown or "∅"


def escape(text: str) -> str:
    return html.escape(text, quote=True)


def shade(alpha: float) -> str:
    alpha = min(max(alpha, 0.0), 1.0)
    return f"rgba({SHADE[0]},{SHADE[1]},{SHADE[2]},{alpha:.2f})"


def token_span(token: str, value: float, scale: float, marked: bool = False) -> str:
    """One token, shaded by ``value / scale``, with the token and its value on hover."""
    alpha = value / scale if scale > 0 else 0.0
    style = f" style='background:{shade(alpha)}'" if alpha > 0.005 else ""
    css = "t m" if marked else "t"
    title = f"{token!r}: {value:.3f}"
    return f"<span class='{css}'{style} title='{escape(title)}'>{escape(visible(token))}</span>"


def tokens_html(tokens: Sequence[str], values: Sequence[float], scale: float, marked: int | None = None) -> str:
    return "".join(token_span(t, v, scale, i == marked) for i, (t, v) in enumerate(zip(tokens, values)))


def example_html(example: "Example", scale: float) -> str:
    where = f"row {example.row}, position {example.position}"
    return (f"<div class='ctx' title='{escape(where)}'><span class='v'>{example.value:.2f}</span>"
            f"{tokens_html(example.str_tokens, example.values, scale, example.marked)}</div>")


def histogram_svg(histogram: "Histogram", width: int = 380, height: int = 130) -> str:
    """Bars of the non-zero activations, the count of each bin on hover, the range on the axis."""
    counts = histogram.counts.tolist()
    edges = histogram.edges.tolist()
    top = max(counts) or 1
    left, bottom = 34, 18
    plot_w, plot_h = width - left - 6, height - bottom - 6
    bar_w = plot_w / len(counts)
    bars = []
    for i, c in enumerate(counts):
        h = plot_h * c / top
        tip = f"{edges[i]:.2f} to {edges[i + 1]:.2f}: {c} tokens"
        bars.append(f"<rect x='{left + i * bar_w:.1f}' y='{6 + plot_h - h:.1f}' width='{max(bar_w - 1, 0.5):.1f}' "
                    f"height='{h:.1f}' fill='rgb{SHADE}'><title>{escape(tip)}</title></rect>")
    axis = (f"<line x1='{left}' y1='{6 + plot_h}' x2='{left + plot_w}' y2='{6 + plot_h}' stroke='#888'/>"
            f"<text x='{left}' y='{height - 4}' font-size='10'>0</text>"
            f"<text x='{left + plot_w}' y='{height - 4}' font-size='10' text-anchor='end'>{edges[-1]:.2f}</text>"
            f"<text x='{left - 4}' y='14' font-size='10' text-anchor='end'>{top}</text>"
            f"<text x='{left - 4}' y='{6 + plot_h}' font-size='10' text-anchor='end'>0</text>")
    return (f"<svg width='{width}' height='{height}' viewBox='0 0 {width} {height}' role='img'>"
            f"{''.join(bars)}{axis}</svg>")


def logits_html(tokens: Sequence[str], values: Sequence[float], colour: str) -> str:
    biggest = max((abs(v) for v in values), default=1.0) or 1.0
    rows = "".join(
        f"<tr><td><span class='t' style='border:1px solid #ddd' title='{escape(repr(t))}'>{escape(visible(t))}</span>"
        f"</td><td class='num'>{v:+.3f}</td><td><svg width='60' height='9'><rect width='{60 * abs(v) / biggest:.1f}' "
        f"height='9' fill='{colour}'/></svg></td></tr>" for t, v in zip(tokens, values))
    return f"<table>{rows}</table>"


def intervals_html(intervals: Sequence["IntervalExamples"], scale: float) -> str:
    parts = []
    for interval in reversed(intervals):  # highest first, like the max-activating panel above
        head = (f"<div class='note'>{interval.low:.2f} to {interval.high:.2f} "
                f"({interval.n_candidates} contexts; {len(interval.examples)} shown)</div>")
        parts.append(head + "".join(example_html(e, scale) for e in interval.examples))
    return "".join(parts) or "<div class='note'>the feature never fires here</div>"


def dashboard_html(dash: "FeatureDashboard") -> str:
    """The dashboard's panels as one HTML fragment (with its scoped style)."""
    hist = dash.histogram
    scale = dash.max_activation
    title = f"Feature {dash.feature} <span class='note'>at {escape(dash.hook_name)}</span>"
    facts = [f"density {100 * hist.density:.3g}% of {dash.n_tokens:,} tokens", f"max activation {scale:.3f}"]
    if dash.label is not None:
        if dash.label.label is None:
            facts.append("label: none (no candidate predicts it)")
        else:
            facts.append(f"label <b>{escape(dash.label.label)}</b> (held-out prediction score "
                         f"{dash.label.score:.2f}; correlation {dash.label.fit_correlation:.2f} where chosen)")
    if dash.neuronpedia:
        facts.append(f"<a href='{escape(dash.neuronpedia)}' target='_blank' rel='noopener'>Neuronpedia page</a>")
    logits = dash.logits
    panels = [
        f"<div><h4>Activations (non-zero)</h4>{histogram_svg(hist)}</div>",
        f"<div><h4>Top positive logits</h4>{logits_html(logits.top_tokens, logits.top_values, POSITIVE)}</div>",
        f"<div><h4>Top negative logits</h4>{logits_html(logits.bottom_tokens, logits.bottom_values, NEGATIVE)}</div>",
    ]
    if dash.nearest is not None:
        rows = "".join(f"<tr><td>{f}</td><td class='num'>{c:.3f}</td></tr>"
                       for f, c in zip(dash.nearest.features, dash.nearest.cosines))
        panels.append(f"<div><h4>Nearest in {escape(dash.other_name)}</h4>"
                      f"<table><tr><th>feature</th><th>cosine</th></tr>{rows}</table></div>")
    examples = "".join(example_html(e, scale) for e in dash.max_examples) or \
        "<div class='note'>the feature never fires here</div>"
    return (f"{STYLE}<div class='mid'><h3>{title}</h3><div class='note'>{' · '.join(facts)}</div>"
            f"<div class='row'>{''.join(panels)}</div>"
            f"<h4>Top activations</h4>{examples}"
            f"<h4>Activation intervals</h4>{intervals_html(dash.intervals, scale)}"
            f"<div class='note'>logit effects: W_dec[f] @ W_U, the final LayerNorm ignored. Shading: activation "
            f"over the feature's max; hover a token for its value.</div></div>")


def text_view_html(view: "TextView") -> str:
    lines = []
    for i, feature in enumerate(view.features):
        values = view.values[i].tolist()
        scale = float(view.scales[i])
        lines.append(f"<div class='ctx' style='white-space:normal'><span class='v'>feature {feature}</span>"
                     f"{tokens_html(view.str_tokens, values, scale)}</div>")
    return (f"{STYLE}<div class='mid'>{''.join(lines)}<div class='note'>shade: activation over the feature's "
            f"scale; hover a token for its value</div></div>")


def page(fragment: str, title: str) -> str:
    """A standalone HTML document around ``fragment``."""
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title></head>"
            f"<body>{fragment}</body></html>\n")
