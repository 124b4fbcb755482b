"""Notebooks that render anywhere: trusted executed copies, offline HTML export, a quiet JupyterLab."""

import base64
import importlib.resources
import json
import re
from pathlib import Path

import nbformat
import pytest
from nbformat.sign import NotebookNotary

from mi_course.cli import LAB_SETTING_DEFAULTS, lab_command
from mi_course.cli import main as cli
from mi_course.export import WIDGET_NOTE, export_html, remote_assets

# nbconvert's defaults fetch MathJax and require.js from cdnjs and the widget renderer from unpkg.
CDN_HOSTS = ("cdnjs.cloudflare.com", "unpkg.com", "cdn.jsdelivr.net/npm/mathjax", "require.min.js")
PNG_1PX = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d4944415478da63f8ffff3f0005fe02fe"
    "a7d6a4f60000000049454e44ae426082")).decode()
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def test_run_signs_the_executed_copy_so_jupyterlab_trusts_it(tmp_path, monkeypatch):
    from mi_course.lessons import run_notebook

    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter-data"))
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "from IPython.display import HTML\nHTML('<div id=\"v\"></div><script>v.textContent = 1</script>')")]
    path = tmp_path / "99_view.ipynb"
    nbformat.write(nb, path)

    result = run_notebook(path, tmp_path / "out", impl="solutions", cell_timeout=60)
    assert result.status == "ok", result.error
    executed = nbformat.read(tmp_path / "out" / path.name, as_version=4)
    assert "text/html" in executed.cells[0].outputs[0].data
    assert NotebookNotary().check_signature(executed), "the executed copy is not trusted in the user's data dir"
    (tmp_path / "another-user").mkdir()
    other = NotebookNotary(data_dir=str(tmp_path / "another-user"))
    assert not other.check_signature(executed), "a signature every data dir accepts checks nothing"


def _lesson_like_notebook() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    # An explorer as `mi-course run` saves it: a VBox of a slider, an HTML caption and an Output widget.
    state = {"box": {"model_name": "VBoxModel", "state": {"children": ["IPY_MODEL_s", "IPY_MODEL_h", "IPY_MODEL_o"]}},
             "s": {"model_name": "IntSliderModel", "state": {"value": 7, "description": "layer-slider"}},
             "h": {"model_name": "HTMLModel", "state": {"value": "<b>head 1.3 caption</b>"}},
             "o": {"model_name": "OutputModel", "state": {"outputs": [nbformat.v4.new_output(
                 "display_data", data={"text/html": "<table id='scores'></table>"})]}}}
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"version_major": 2, "version_minor": 0,
                                                                            "state": state}}
    plot = nbformat.v4.new_code_cell("plot()")
    plot.outputs = [nbformat.v4.new_output("display_data", data={"image/png": PNG_1PX, "text/plain": "<Figure>"})]
    view = nbformat.v4.new_code_cell("explore()")
    view.outputs = [nbformat.v4.new_output("display_data", data={
        WIDGET_MIME: {"model_id": "box", "version_major": 2, "version_minor": 0}, "text/plain": "VBox(...)"})]
    nb.cells = [nbformat.v4.new_markdown_cell("The score is $a_i b_i$ and $x^2$; in display\n\n"
                                              "$$\\sum_{i} a_i b_i$$"), plot, view]
    return nb


def test_export_is_offline_with_bundled_mathjax_figures_and_widget_notes(tmp_path, capsys):
    path = tmp_path / "99_lesson.ipynb"
    nbformat.write(_lesson_like_notebook(), path)
    assert cli(["export", str(path), "--out", str(tmp_path / "html")]) == 0
    assert "99_lesson.html" in capsys.readouterr().out
    html = (tmp_path / "html" / "99_lesson.html").read_text()

    assert not re.search(r"<script[^>]*src=[\"']?https?:", html), "a script is loaded from the network"
    assert not re.search(r"<link[^>]*href=[\"']?https?:", html), "a stylesheet is loaded from the network"
    for host in CDN_HOSTS:
        assert host not in html, f"the page still points at {host}"
    assert remote_assets(html) == []
    # The bundled MathJax 3 SVG build, configured for $...$, and the TeX left intact for it (markdown must not
    # have turned a_i b_i into emphasis).
    bundle = (importlib.resources.files("mathjax") / "static/mathjax/es5/tex-svg-full.js").read_text()
    assert bundle[:5000] in html and bundle[-5000:] in html, "MathJax 3's self-contained SVG build is not inlined"
    assert re.search(r"inlineMath: \[\['\$', '\$'\]", html), "MathJax is not told to typeset $...$"
    assert "$a_i b_i$" in html and "$x^2$" in html and "$$\\sum_{i} a_i b_i$$" in html
    assert f"data:image/png;base64,{PNG_1PX}" in html, "the figure is not embedded"
    assert WIDGET_NOTE in html and WIDGET_MIME not in html, "a widget view needs a kernel: expected the note"
    # ... and after it what the explorer showed, in order; the slider has nothing to show without a kernel.
    after_note = html.split(WIDGET_NOTE, 1)[1]
    table = re.search(r"<table id=[\"']scores", after_note)
    assert table and 0 < after_note.find("head 1.3 caption") < table.start(), \
        "the explorer's caption and Output contents are missing or out of order"
    assert "layer-slider" not in html


def test_export_refuses_a_page_that_would_load_scripts_from_the_network(tmp_path):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("show()")
    cell.outputs = [nbformat.v4.new_output("display_data", data={
        "text/html": '<script src="https://unpkg.com/some-lib.js"></script>'})]
    nb.cells = [cell]
    path = tmp_path / "99_cdn.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(ValueError, match="would not work offline"):
        export_html(path, tmp_path / "html")


def test_export_of_a_missing_notebook_says_so(capsys):
    assert cli(["export", "no-such-notebook.ipynb"]) == 2
    assert "no notebook" in capsys.readouterr().err


def test_lab_turns_off_the_news_prompt_and_update_check(tmp_path, monkeypatch):
    import jsonschema
    import jupyterlab
    from jupyterlab.labapp import LabApp
    from jupyterlab_server.settings_utils import _get_overrides

    cmd, env = lab_command(notebook_dir=tmp_path)
    assert f"--notebook-dir={tmp_path}" in cmd
    app = LabApp()
    app.parse_command_line([a for a in cmd if a.startswith("--LabApp.")])
    assert app.news_url is None
    assert app.check_for_updates_class is jupyterlab.NeverCheckForUpdate

    # JupyterLab's own loader sees the defaults through the environment cmd_lab passes ...
    monkeypatch.setenv("JUPYTER_CONFIG_PATH", env["JUPYTER_CONFIG_PATH"])
    overrides, error = _get_overrides(str(tmp_path / "app-settings"))
    assert not error
    notification = overrides["@jupyterlab/apputils-extension:notification"]
    assert notification["fetchNews"] == "false" and notification["checkForUpdates"] is False
    # ... and they are valid for the installed JupyterLab ("false" is its "Never"; "none" would ask).
    schema_path = Path(jupyterlab.__file__).parent / "schemas" / "@jupyterlab" / "apputils-extension"
    schema = json.loads((schema_path / "notification.json").read_text())
    jsonschema.validate(LAB_SETTING_DEFAULTS["@jupyterlab/apputils-extension:notification"], schema)
    assert {"const": "false", "title": "Never"} in schema["properties"]["fetchNews"]["oneOf"]


# ---------------------------------------------------------------- the sliced reply wait (nbclient#312 workaround)


def _fake_channel(replies):
    """A get_msg that raises Empty after its timeout until the reply is due, then returns it; records timeouts."""
    import time
    from queue import Empty

    calls = []

    def get_msg(timeout=None):
        calls.append(timeout)
        if replies and time.monotonic() >= replies[0][0]:
            return replies.pop(0)[1]
        time.sleep(min(timeout, 0.01))  # a missed wakeup: sit out (a scaled-down) timeout
        raise Empty

    return get_msg, calls


def test_sliced_get_msg_finds_a_reply_a_long_wait_would_miss():
    import asyncio
    import time

    from mi_course.lessons import sliced_get_msg

    get_msg, calls = _fake_channel([(time.monotonic() + 0.05, {"msg": "reply"})])
    got = asyncio.run(sliced_get_msg(get_msg, slice_s=0.01)(timeout=30))
    assert got == {"msg": "reply"}
    assert len(calls) > 1 and max(calls) <= 0.01 + 1e-9, f"each wait should be one short slice, got {calls[:5]}"


def test_sliced_get_msg_still_times_out_and_waits_forever_without_timeout():
    import asyncio
    import time
    from queue import Empty

    from mi_course.lessons import sliced_get_msg

    get_msg, _ = _fake_channel([])
    start = time.monotonic()
    with pytest.raises(Empty):
        asyncio.run(sliced_get_msg(get_msg, slice_s=0.01)(timeout=0.1))
    assert 0.09 <= time.monotonic() - start < 2, "the overall timeout should be kept, not multiplied"
    get_msg, _ = _fake_channel([(time.monotonic() + 0.05, "late")])
    assert asyncio.run(sliced_get_msg(get_msg, slice_s=0.01)(timeout=None)) == "late"
