"""Standalone HTML from a lesson notebook that works offline, math included.

nbconvert's HTML pulls MathJax, require.js, the widget renderer and mermaid from CDNs, so offline every
formula stays raw TeX. Here the page carries everything it needs in one file: MathJax 3's SVG build
(fonts compiled in, no font files to fetch) inlined from the ``django-static-mathjax`` package, figures
as data URIs, and circuitsvis views with their own inline JS. Widget views need a kernel, so each becomes a
short note saying where to use it, followed by a static snapshot of what it showed when the notebook ran
(its Output and HTML widgets' contents, from the widget state `mi-course run` saved).
"""

from __future__ import annotations

import copy
import importlib.resources
import re
from pathlib import Path

import jinja2
import nbformat

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_NOTE = ('<div class="mi-course-widget-note"><em>Interactive explorer: open this notebook in JupyterLab '
               'or Colab and run it to use it. Below, what it showed when the notebook ran.</em></div>')

# The config runs before MathJax loads; delimiters match what JupyterLab typesets in markdown.
MATHJAX_CONFIG = r"""
window.MathJax = {
  tex: {inlineMath: [['$', '$'], ['\\(', '\\)']], displayMath: [['$$', '$$'], ['\\[', '\\]']],
        processEscapes: true, processEnvironments: true, tags: 'ams'},
  svg: {fontCache: 'global'},
  startup: {typeset: true}
};
"""

# Blocks of nbconvert's lab template that would fetch from a CDN, replaced by nothing or by inline code.
OFFLINE_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block html_head_js_mathjax -%}
<script>{{ resources.mi_course_mathjax_config }}</script>
<script>{{ resources.mi_course_mathjax }}</script>
{%- endblock html_head_js_mathjax -%}
"""

# A script or stylesheet fetched from the network; what an offline page must not hold.
REMOTE_ASSET = re.compile(r"""<script[^>]*\ssrc=["']?https?:"""
                          r"""|<link[^>]*\shref=["']?https?:"""
                          r"""|@import\s+(url\()?["']?https?:""", re.I)


def mathjax_js() -> str:
    """MathJax 3's TeX-to-SVG build with every TeX extension, as shipped by django-static-mathjax."""
    try:
        path = importlib.resources.files("mathjax") / "static" / "mathjax" / "es5" / "tex-svg-full.js"
        text = path.read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError) as err:
        raise FileNotFoundError("the offline MathJax is missing: pip install django-static-mathjax "
                                "(`make install` does)") from err
    # Inlined inside <script>: a literal "</script" would end the element early.
    return text.replace("</script", "<\\/script")


def widget_snapshot(model_id: str, state: dict) -> list[dict]:
    """The outputs a widget view showed, in page order: Output widgets' outputs and HTML widgets' text.

    Controls (sliders, text boxes) have nothing to show without a kernel and are left out.
    """
    model = state.get(model_id)
    if model is None:
        return []
    fields = model.get("state", {})
    if model.get("model_name") == "OutputModel":
        shown = []
        for output in fields.get("outputs", []):
            view = output.get("data", {}).get(WIDGET_VIEW)
            shown += widget_snapshot(view["model_id"], state) if view else [output]
        return shown
    if model.get("model_name") in ("HTMLModel", "HTMLMathModel") and fields.get("value"):
        return [nbformat.v4.new_output("display_data", data={"text/html": fields["value"]})]
    return [out for child in fields.get("children", []) if isinstance(child, str)
            for out in widget_snapshot(child.removeprefix("IPY_MODEL_"), state)]


def offline_copy(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The notebook without widget state; each widget view becomes a note and a snapshot of its outputs."""
    nb = copy.deepcopy(nb)
    state = nb.metadata.pop("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    for cell in nb.cells:
        if "outputs" not in cell:
            continue
        outputs = []
        for output in cell.outputs:
            view = output.get("data", {}).get(WIDGET_VIEW)
            if view is None:
                outputs.append(output)
                continue
            outputs.append(nbformat.v4.new_output("display_data", data={"text/html": WIDGET_NOTE}))
            outputs += [nbformat.from_dict(o) for o in widget_snapshot(view.get("model_id", ""), state)]
        cell.outputs = outputs
    return nb


def remote_assets(html: str) -> list[str]:
    """Script and stylesheet references to http(s) URLs in ``html`` (an offline page has none)."""
    return [html[m.start():m.start() + 120] for m in REMOTE_ASSET.finditer(html)]


def notebook_to_html(nb: nbformat.NotebookNode, name: str = "notebook") -> str:
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab", embed_images=True,
                            extra_loaders=[jinja2.DictLoader({"mi_course_offline.html.j2": OFFLINE_TEMPLATE})])
    exporter.template_file = "mi_course_offline.html.j2"
    resources = {"metadata": {"name": name}, "mi_course_mathjax_config": MATHJAX_CONFIG,
                 "mi_course_mathjax": mathjax_js()}
    html, _ = exporter.from_notebook_node(offline_copy(nb), resources=resources)
    return html


def export_html(path: Path, out_dir: Path) -> Path:
    """Write ``out_dir/<notebook name>.html``, a page that needs no network; returns its path."""
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    html = notebook_to_html(nb, name=path.stem)
    remote = remote_assets(html)
    if remote:  # an output of the notebook itself links a CDN; say so rather than ship a page that breaks
        raise ValueError(f"{path.name}: outputs load scripts or styles from the network, so the page "
                         f"would not work offline: {remote[0]!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{path.stem}.html"
    out.write_text(html, encoding="utf-8")
    return out


def export_sources(names: list[str]) -> list[tuple[Path, bool]]:
    """(notebook to export, whether it holds outputs) per name, number or path.

    A lesson named by number or name is taken from ``mi-course run``'s executed copies when there is one,
    else the course's notebook (no outputs yet).
    """
    from mi_course.lessons import executed_dir, notebook_paths

    out = []
    for name in names:
        if Path(name).suffix == ".ipynb":  # a file named by path is exported as it is
            if not Path(name).exists():
                raise FileNotFoundError(f"no notebook {name}")
            chosen = [Path(name)]
        else:
            chosen = [executed_dir() / p.name if (executed_dir() / p.name).exists() else p
                      for p in notebook_paths([name])]
        for path in chosen:
            nb = nbformat.read(path, as_version=4)
            out.append((path.resolve(), any(cell.get("outputs") for cell in nb.cells)))
    return out
