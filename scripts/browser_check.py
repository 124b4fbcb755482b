"""A real-browser check: an executed lesson in JupyterLab and its offline HTML export, in headless Chromium.

    python scripts/browser_check.py                      # lesson 06's executed copy (runs it first if missing)
    python scripts/browser_check.py --notebook 07         # another lesson, or a path to an .ipynb

Starts JupyterLab the way `mi-course lab` does (on 127.0.0.1, a free port, a token, temporary settings,
workspace and runtime folders; the user's Jupyter data dir, where `mi-course run` signed the notebook), opens
the notebook in Chromium (Debian's package, driven over the DevTools protocol, no other browser download) and
checks in the DOM that every matplotlib figure loaded, every circuitsvis view rendered (trusted: its script
ran), every widget view rendered from the saved state, and that no "Jupyter news" prompt appeared. Then it
opens `mi-course export`'s page from file:// and checks that MathJax typeset the math (no raw $...$ left),
that the figures and views rendered there too, and that the page asked the network for nothing.
Screenshots and a JSON summary go to build/browser-check/. Exit code 1 if any check fails.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import nbformat
import websocket

from mi_course.cli import lab_command
from mi_course.export import export_html
from mi_course.lessons import executed_dir, notebook_paths
from mi_course.paths import repo_root

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--window-size=1400,1000", "--remote-debugging-port=0"]
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
NEWS_PROMPT = "official Jupyter news"

# What rendered, counted in the page. A circuitsvis view is a div#circuits-vis-* whose script, when it runs,
# renders elements into it (untrusted, it stays an empty box). Widgets: a rendered view is a .jupyter-widgets
# element in an output; a failed one says "Error displaying widget" (or stays "Loading widget...").
PROBE_JS = r"""(() => {
  const root = document.querySelector(ROOT) || document.body;
  const imgs = [...root.querySelectorAll('.jp-RenderedImage img, .jp-OutputArea-output img')];
  const views = [...root.querySelectorAll('div[id^="circuits-vis-"]')];
  const rendered = views.filter(v => [...v.querySelectorAll('*')].some(e => e.tagName !== 'SCRIPT'));
  const outputs = [...root.querySelectorAll('.jp-OutputArea-output')];
  const widgetOutputs = outputs.filter(o => o.matches('.jupyter-widgets') || o.querySelector('.jupyter-widgets'));
  const widgetRendered = widgetOutputs.filter(o => o.querySelector('[class*="widget-"]'));
  const widgetErrors = outputs.filter(o => /Error displaying widget|Loading widget|Model not found/i.test(o.innerText));
  const text = document.body ? document.body.innerText : '';
  // Raw TeX left over: $...$ in text outside code, scripts and MathJax's own output.
  const clone = root.cloneNode(true);
  clone.querySelectorAll('pre, code, script, style, mjx-container, .jp-InputArea-editor').forEach(e => e.remove());
  const rawTex = (clone.textContent.match(/\$[^$\n]{1,80}\$/g) || []).slice(0, 5);
  return {
    cells: root.querySelectorAll('.jp-Cell').length,
    images: imgs.length, imagesLoaded: imgs.filter(i => i.complete && i.naturalWidth > 0).length,
    views: views.length, viewsRendered: rendered.length,
    widgets: widgetOutputs.length, widgetsRendered: widgetRendered.length, widgetErrors: widgetErrors.length,
    mathjax: document.querySelectorAll('mjx-container').length,
    mathErrors: document.querySelectorAll('mjx-merror').length,
    rawTex, news: text.includes(NEWS),
    toasts: [...document.querySelectorAll('.Toastify__toast')].map(t => t.innerText.slice(0, 120)),
  };
})()"""


class Chromium:
    """Headless Chromium driven over the DevTools protocol (one page, one websocket)."""

    def __init__(self, binary: str, workdir: Path):
        self.profile = workdir / "chromium-profile"
        self.proc = subprocess.Popen([binary, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{binary} did not start (exit code {self.proc.poll()})")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10))
        page = next(t for t in targets if t["type"] == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60, suppress_origin=True)
        self.next_id, self.events = 0, []
        for domain in ("Page", "Runtime", "Network"):
            self.send(f"{domain}.enable")
        self.send("Emulation.setDeviceMetricsOverride", width=1400, height=1000, deviceScaleFactor=1, mobile=False)

    def send(self, method: str, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def evaluate(self, expression: str, await_promise: bool = False):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=await_promise)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails'].get('text')} "
                               f"{result['exceptionDetails'].get('exception', {}).get('description', '')[:300]}")
        return result["result"].get("value")

    def goto(self, url: str):
        self.events.clear()
        self.loader = self.send("Page.navigate", url=url).get("loaderId")

    def requested_urls(self) -> list[str]:
        """URLs the current page requested (not those of a page left behind, still finishing its fetches)."""
        return [e["params"]["request"]["url"] for e in self.events if e.get("method") == "Network.requestWillBeSent"
                and e["params"].get("loaderId") == self.loader]

    def screenshot(self, path: Path):
        path.write_bytes(base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"]))

    def close(self):
        try:
            self.ws.close()
        finally:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=20)


def expected_outputs(nb: nbformat.NotebookNode) -> dict:
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    data = [o.get("data", {}) for o in outputs]
    return {"cells": len(nb.cells), "images": sum("image/png" in d or "image/jpeg" in d for d in data),
            "views": sum("circuits-vis-" in d.get("text/html", "") for d in data if WIDGET_VIEW not in d),
            "widgets": sum(WIDGET_VIEW in d for d in data),
            "math": any("$" in c.source for c in nb.cells if c.cell_type == "markdown")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_lab(workdir: Path, port: int, token: str, log_path: Path):
    cmd, env = lab_command(notebook_dir=repo_root(), extra=[
        "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", *(["--allow-root"] if os.geteuid() == 0 else [])])
    # Fresh settings/workspace/runtime folders: nothing a previous session chose hides a prompt or restores
    # a layout. The data dir stays the user's, where `mi-course run` signed the notebook.
    for name in ("JUPYTERLAB_SETTINGS_DIR", "JUPYTERLAB_WORKSPACES_DIR", "JUPYTER_RUNTIME_DIR"):
        env[name] = str(workdir / name.lower())
    log = open(log_path, "w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=5)
            return proc
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = "".join(log_path.read_text().splitlines(True)[-15:])
                raise RuntimeError(f"JupyterLab did not start; its log ({log_path}) ends:\n{tail}")
            time.sleep(0.5)


def stop_lab(proc, port: int, token: str):
    try:  # shuts its kernels down too
        req = urllib.request.Request(f"http://127.0.0.1:{port}/api/shutdown?token={token}", method="POST")
        urllib.request.urlopen(req, timeout=10)
        proc.wait(timeout=30)
    except Exception:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def wait_for(browser: Chromium, probe: str, done, timeout: float) -> dict:
    """Poll the page until ``done(state)`` or the timeout; the last state either way."""
    deadline = time.monotonic() + timeout
    state = {}
    while time.monotonic() < deadline:
        try:
            state = browser.evaluate(probe) or {}
        except RuntimeError:  # the page is still navigating
            state = {}
        if state and done(state):
            break
        time.sleep(0.5)
    return state


def check(name: str, ok: bool, detail: str, failures: list[str]) -> None:
    print(f"  {'ok  ' if ok else 'FAIL'}  {name}: {detail}")
    if not ok:
        failures.append(name)


def find_chromium(given: str | None) -> str:
    for candidate in [given, os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"]:
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    sys.exit("no Chromium found: apt-get install -y chromium (or pass --chromium PATH)")


def resolve_notebook(name: str) -> Path:
    if name.endswith(".ipynb"):
        return Path(name).resolve()
    source = notebook_paths([name])[0]
    executed = executed_dir() / source.name
    if not executed.exists():
        print(f"no executed copy of {source.stem}: running `mi-course run {source.stem} --impl solutions` first",
              flush=True)
        subprocess.run([sys.executable, "-m", "mi_course.cli", "run", source.stem, "--impl", "solutions"], check=True)
    return executed


def screenshots(browser: Chromium, shots: list[Path], prefix: str, targets: tuple, block: str = "center") -> None:
    """One screenshot per (kind, CSS selector) present on the page, scrolled to the first match."""
    for kind, selector in targets:
        found = json.dumps(selector)
        if browser.evaluate(f"!!document.querySelector({found})"):
            browser.evaluate(f"document.querySelector({found}).scrollIntoView({{block: '{block}'}})")
            time.sleep(1)
            shots.append(Path(f"{prefix}-{kind}.png"))
            browser.screenshot(shots[-1])


def check_lab(browser: Chromium, port: int, token: str, notebook: Path, expected: dict, timeout: float,
              failures: list[str], shots: list[Path], prefix: str) -> dict:
    rel = notebook.relative_to(repo_root()).as_posix()
    browser.goto(f"http://127.0.0.1:{port}/lab/tree/{rel}?token={token}&reset")
    probe = PROBE_JS.replace("ROOT", json.dumps(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook")) \
                    .replace("NEWS", json.dumps(NEWS_PROMPT))
    wait_for(browser, probe, lambda s: s["cells"] >= expected["cells"] and s["imagesLoaded"] >= expected["images"]
             and s["viewsRendered"] >= expected["views"] and s["widgetsRendered"] >= expected["widgets"], timeout)
    time.sleep(3)  # the news prompt, if any, comes once the app is restored
    state = browser.evaluate(probe)
    print("JupyterLab")
    check("cells", state["cells"] == expected["cells"], f"{state['cells']} of {expected['cells']}", failures)
    check("figures", state["imagesLoaded"] >= expected["images"],
          f"{state['imagesLoaded']} loaded, {expected['images']} in the notebook's outputs", failures)
    check("circuitsvis views", state["viewsRendered"] == expected["views"],
          f"{state['viewsRendered']} rendered of {expected['views']} (an empty box = not trusted)", failures)
    check("widgets", state["widgetsRendered"] >= expected["widgets"] and not state["widgetErrors"],
          f"{state['widgetsRendered']} rendered of {expected['widgets']}, {state['widgetErrors']} errors", failures)
    check("no news prompt", not state["news"], f"toasts: {state['toasts'] or 'none'}", failures)
    external = [u for u in browser.requested_urls() if re.match(r"https?://", u)
                and not u.startswith(f"http://127.0.0.1:{port}/")]
    check("no request leaves the machine", not external, f"{len(external)} external: {external[:3]}", failures)
    screenshots(browser, shots, prefix, (("view", 'div[id^="circuits-vis-"]'),
                                         ("widget", ".jp-OutputArea-output .jupyter-widgets"),
                                         ("figure", ".jp-RenderedImage img")))
    return state


def check_export(browser: Chromium, html: Path, expected: dict, timeout: float, failures: list[str],
                 shots: list[Path], prefix: str) -> dict:
    browser.goto(html.resolve().as_uri())
    typeset = "window.MathJax?.startup?.promise ? MathJax.startup.promise.then(() => true) : false"
    deadline = time.monotonic() + timeout
    while not browser.evaluate(typeset, await_promise=True) and time.monotonic() < deadline:
        time.sleep(0.5)
    probe = PROBE_JS.replace("ROOT", json.dumps("main")).replace("NEWS", json.dumps(NEWS_PROMPT))
    state = wait_for(browser, probe, lambda s: s["imagesLoaded"] >= expected["images"]
                     and s["viewsRendered"] >= expected["views"], timeout)
    state["widgetNotes"] = browser.evaluate("document.querySelectorAll('.mi-course-widget-note').length")
    print(f"exported HTML ({html}, {html.stat().st_size / 1e6:.1f} MB)")
    check("math typeset", state["mathjax"] > 0 or not expected["math"],
          f"{state['mathjax']} formulas by the bundled MathJax, {state['mathErrors']} errors", failures)
    check("no raw TeX", not state["rawTex"] and not state["mathErrors"], f"left: {state['rawTex'] or 'none'}",
          failures)
    check("figures", state["imagesLoaded"] >= expected["images"],
          f"{state['imagesLoaded']} loaded, {expected['images']} in the notebook's outputs", failures)
    check("circuitsvis views", state["viewsRendered"] == expected["views"],
          f"{state['viewsRendered']} rendered of {expected['views']}", failures)
    check("widgets", state["widgetNotes"] == expected["widgets"],
          f"{state['widgetNotes']} of {expected['widgets']} shown as a note and a snapshot (no kernel)", failures)
    requested = [u for u in browser.requested_urls() if not u.startswith(("file:", "data:", "blob:"))]
    check("offline: no network request", not requested, f"{len(requested)}: {requested[:3]}", failures)
    screenshots(browser, shots, prefix, (("math", "mjx-container"), ("widget", ".mi-course-widget-note")), "start")
    return state


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notebook", default="06", help="lesson number/name (its executed copy) or an .ipynb")
    parser.add_argument("--out", default=None, help="screenshots and summary (default build/browser-check)")
    parser.add_argument("--chromium", default=None, help="the Chromium binary (default: chromium on PATH)")
    parser.add_argument("--timeout", type=float, default=120, help="seconds to wait for a page to render")
    args = parser.parse_args()

    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    out_dir = Path(args.out) if args.out else repo_root() / "build" / "browser-check"
    out_dir.mkdir(parents=True, exist_ok=True)
    notebook = resolve_notebook(args.notebook)
    expected = expected_outputs(nbformat.read(notebook, as_version=4))
    html = export_html(notebook, out_dir)
    timings["prepare (run if needed, export)"] = time.perf_counter() - t0
    print(f"notebook {notebook}\nexpected {json.dumps(expected)}")

    failures: list[str] = []
    shots: list[Path] = []
    summary: dict = {"notebook": str(notebook), "expected": expected}
    workdir = Path(tempfile.mkdtemp(prefix="mi-course-browser-"))
    port, token = free_port(), base64.b16encode(os.urandom(16)).decode().lower()
    lab = browser = None
    try:
        t = time.perf_counter()
        lab = start_lab(workdir, port, token, out_dir / "jupyterlab.log")
        browser = Chromium(find_chromium(args.chromium), workdir)
        timings["start JupyterLab and Chromium"] = time.perf_counter() - t
        t = time.perf_counter()
        summary["jupyterlab"] = check_lab(browser, port, token, notebook, expected, args.timeout, failures, shots,
                                          str(out_dir / f"lab-{notebook.stem}"))
        timings["JupyterLab checks (incl. 3 s wait for a prompt)"] = time.perf_counter() - t
        t = time.perf_counter()
        summary["export"] = check_export(browser, html, expected, args.timeout, failures, shots,
                                         str(out_dir / f"export-{notebook.stem}"))
        timings["export checks"] = time.perf_counter() - t
    finally:
        if browser:
            browser.close()
        if lab:
            stop_lab(lab, port, token)
        shutil.rmtree(workdir, ignore_errors=True)

    timings["total"] = time.perf_counter() - t0
    summary.update(timings=timings, screenshots=[str(s) for s in shots], failures=failures)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    print("timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))
    print("screenshots: " + ", ".join(str(s) for s in shots))
    print(f"{'FAILED: ' + ', '.join(failures) if failures else 'all browser checks passed'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
