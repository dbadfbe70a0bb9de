"""Check the rendered pages of a built book in headless Chromium: nothing wider than its column.

Opens every page of ``HTML_DIR`` (or the ones named) at a window 1280 CSS pixels wide, waits
for fonts and MathJax, then measures the layout in the browser: a table, a code block, a text
output or a cell output whose content reaches beyond the right edge of the page's text column
(``article``) is reported, with its width, the column's width, the section it sits in and the
first characters of its text. Such an element is either clipped or hidden behind a horizontal
scroll bar, so a reader does not see it. A full-page screenshot of every page is saved too;
look at them.

Usage::

    python tools/check_pages.py _build/html                      # every page
    python tools/check_pages.py _build/html book/06_epistemic.html --screenshots /tmp/shots

The exit status is 1 when any page overflows, 2 when Chromium cannot be run.

Chromium is driven through its DevTools protocol over a websocket (tornado's client, which
Jupyter already installs); Debian's package is ``chromium`` (``apt-get install -y chromium``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

WIDTH = 1280  # CSS px: a laptop browser window
HEIGHT = 900
MAX_SCREENSHOT_HEIGHT = 30000  # CSS px; longer pages are cut at the bottom of the screenshot
TOLERANCE = 1.0  # CSS px of sub-pixel rounding not counted as overflow
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
    "--mute-audio", f"--window-size={WIDTH},{HEIGHT}",
)
# Pages of a Sphinx build that are not chapters.
SKIPPED = {"genindex.html", "search.html", "py-modindex.html"}

# Runs in the page: every table, code block and output whose right edge passes the right
# edge of its column's content box. Only the innermost overflowing element is reported.
MEASURE_JS = r"""
(() => {
  const tol = %(tol)s;
  const selector = "table, pre, div.cell_output, div.output, .highlight";
  const column = (el) => el.closest("article, main, [role=main]") || document.body;
  const contentBox = (col) => {
    const r = col.getBoundingClientRect(), s = getComputedStyle(col);
    const left = r.left + parseFloat(s.borderLeftWidth) + parseFloat(s.paddingLeft);
    const width = col.clientWidth - parseFloat(s.paddingLeft) - parseFloat(s.paddingRight);
    return {left: left, right: left + width, width: width};
  };
  const section = (el) => {
    let s = el.closest("section");
    while (s) {
      const h = s.querySelector(":scope > h1, :scope > h2, :scope > h3, :scope > h4");
      if (h) return h.textContent.replace(/[#¶]/g, "").trim();
      s = s.parentElement ? s.parentElement.closest("section") : null;
    }
    return "";
  };
  const kind = (el) => {
    if (el.tagName === "TABLE") return "table";
    if (el.closest("div.cell_output, div.output")) return "output";
    return "code";
  };
  const found = [];
  for (const el of document.querySelectorAll(selector)) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) continue;  // not displayed (collapsed, hidden)
    const col = contentBox(column(el));
    const width = Math.max(r.width, el.scrollWidth);
    const right = r.left + width;
    if (right > col.right + tol || width > col.width + tol) {
      found.push({el: el, kind: kind(el), width: Math.round(width),
                  column: Math.round(col.width), overflow: Math.round(right - col.right),
                  section: section(el),
                  text: (el.innerText || "").trim().replace(/\s+/g, " ").slice(0, 70)});
    }
  }
  // keep the innermost: drop an element that contains another overflowing one
  const inner = found.filter(f => !found.some(g => g !== f && f.el.contains(g.el)));
  return JSON.stringify({
    width: window.innerWidth,
    height: Math.max(document.documentElement.scrollHeight, document.body.scrollHeight),
    overflows: inner.map(f => ({kind: f.kind, width: f.width, column: f.column,
                                overflow: f.overflow, section: f.section, text: f.text})),
  });
})()
""" % {"tol": TOLERANCE}

WAIT_JS = r"""
(async () => {
  await document.fonts.ready;
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
  }
  await Promise.all(Array.from(document.images).filter(i => !i.complete).map(
    i => new Promise(ok => { i.onload = i.onerror = ok; })));
  return true;
})()
"""


@dataclass
class Overflow:
    """One element wider than its column.

    Attributes
    ----------
    kind : {"table", "code", "output"}
    width : int
        Width of the element's content (CSS px).
    column : int
        Width of the page's text column (CSS px).
    overflow : int
        How far the content reaches past the column's right edge (CSS px).
    section : str
        Title of the section the element sits in ("" if none).
    text : str
        The first characters of the element's text.
    """

    kind: str
    width: int
    column: int
    overflow: int
    section: str
    text: str

    def __str__(self) -> str:
        where = f" in '{self.section}'" if self.section else ""
        return (f"{self.kind} {self.width} px wide in a {self.column} px column "
                f"(+{self.overflow} px){where}: {self.text!r}")


@dataclass
class PageResult:
    """The check of one page.

    Attributes
    ----------
    page : Path
        The HTML file.
    overflows : list of Overflow
        The elements wider than their column (empty: the page fits).
    screenshot : Path or None
        The full-page PNG screenshot, if one was asked for.
    height : int
        Height of the page (CSS px).
    """

    page: Path
    overflows: list[Overflow]
    screenshot: Path | None
    height: int


def find_chromium(explicit: str | None = None) -> str | None:
    """Path of a Chromium executable: ``explicit``, ``$CHROMIUM``, or one on ``PATH``."""
    for name in (explicit, os.environ.get("CHROMIUM"), *CHROMIUM_NAMES):
        if name and (path := shutil.which(name)):
            return path
    return None


def book_pages(html_dir: Path) -> list[Path]:
    """The content pages of a built book: every ``.html`` but Sphinx's own and redirects."""
    pages = []
    for p in sorted(html_dir.rglob("*.html")):
        rel = p.relative_to(html_dir)
        if rel.parts[0].startswith("_") or rel.name in SKIPPED:
            continue
        head = p.read_text(errors="replace")[:2000].lower()
        if 'http-equiv="refresh"' in head:  # index.html of a Jupyter Book: a redirect
            continue
        pages.append(p)
    return pages


class _DevTools:
    """A minimal DevTools-protocol client: one browser websocket, one flattened page session."""

    def __init__(self, ws):
        self.ws = ws
        self.next_id = 0
        self.events: list[dict] = []

    async def send(self, method: str, params: dict | None = None, session: str | None = None,
                   timeout: float = 60.0) -> dict:
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        await self.ws.write_message(json.dumps(msg))
        while True:
            reply = await self._read(timeout)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    async def wait_event(self, method: str, session: str, timeout: float = 60.0) -> dict:
        while True:
            for i, ev in enumerate(self.events):
                if ev["method"] == method and ev.get("sessionId") == session:
                    return self.events.pop(i)
            reply = await self._read(timeout)
            if "method" in reply:
                self.events.append(reply)

    async def evaluate(self, expression: str, session: str):
        res = await self.send("Runtime.evaluate", {
            "expression": expression, "awaitPromise": True, "returnByValue": True,
        }, session)
        if "exceptionDetails" in res:
            raise RuntimeError(f"script failed: {res['exceptionDetails']}")
        return res["result"].get("value")

    async def _read(self, timeout: float) -> dict:
        raw = await asyncio.wait_for(self.ws.read_message(), timeout)
        if raw is None:
            raise RuntimeError("Chromium closed the DevTools connection")
        return json.loads(raw)


def _start_chromium(chromium: str, profile_dir: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [chromium, *CHROMIUM_FLAGS, "--remote-debugging-port=0",
         f"--user-data-dir={profile_dir}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # its own process group: stopped with all its helpers
    )
    deadline = time.monotonic() + 60
    lines = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line and proc.poll() is not None:
            break
        lines.append(line)
        if m := re.search(r"DevTools listening on (ws://\S+)", line):
            # keep draining stderr so that Chromium never blocks on a full pipe
            threading.Thread(target=proc.stderr.read, daemon=True).start()
            return proc, m.group(1)
    _stop(proc)
    raise RuntimeError("Chromium did not start:\n" + "".join(lines[-20:]))


def _stop(proc: subprocess.Popen) -> None:
    """Stop the Chromium we started, with its renderer and helper processes."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            continue


async def _check_pages(chromium: str, pages: list[Path], shot_dir: Path | None,
                       names: list[str]) -> list[PageResult]:
    from tornado.websocket import websocket_connect

    results = []
    with tempfile.TemporaryDirectory(prefix="check-pages-", ignore_cleanup_errors=True) as profile:
        proc, url = _start_chromium(chromium, profile)
        try:
            ws = await websocket_connect(url, max_message_size=512 * 2**20)
            cdp = _DevTools(ws)
            target = await cdp.send("Target.createTarget", {"url": "about:blank"})
            session = (await cdp.send("Target.attachToTarget", {
                "targetId": target["targetId"], "flatten": True}))["sessionId"]
            await cdp.send("Page.enable", session=session)
            for page, name in zip(pages, names):
                results.append(await _check_one(cdp, session, page, shot_dir, name))
            ws.close()
        finally:
            _stop(proc)
    return results


async def _check_one(cdp: _DevTools, session: str, page: Path, shot_dir: Path | None,
                     name: str) -> PageResult:
    await cdp.send("Emulation.setDeviceMetricsOverride", {
        "width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False}, session)
    cdp.events.clear()
    await cdp.send("Page.navigate", {"url": page.resolve().as_uri()}, session)
    await cdp.wait_event("Page.loadEventFired", session)
    await cdp.evaluate(WAIT_JS, session)
    await asyncio.sleep(0.3)  # let late layout (MathJax, web fonts) settle
    measured = json.loads(await cdp.evaluate(MEASURE_JS, session))
    overflows = [Overflow(**o) for o in measured["overflows"]]
    shot = None
    if shot_dir is not None:
        height = min(int(measured["height"]), MAX_SCREENSHOT_HEIGHT)
        await cdp.send("Emulation.setDeviceMetricsOverride", {
            "width": WIDTH, "height": height, "deviceScaleFactor": 1, "mobile": False}, session)
        await asyncio.sleep(0.2)
        png = await cdp.send("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": False}, session, timeout=120)
        shot = shot_dir / f"{name}.png"
        shot.write_bytes(base64.b64decode(png["data"]))
    return PageResult(page, overflows, shot, int(measured["height"]))


def check_pages(pages: list[Path], screenshots: Path | None = None,
                chromium: str | None = None, root: Path | None = None) -> list[PageResult]:
    """Render ``pages`` in headless Chromium 1280 px wide and measure what overflows.

    Parameters
    ----------
    pages : list of Path
        HTML files to open.
    screenshots : Path, optional
        Directory for one full-page PNG per page (created); None: no screenshots.
    chromium : str, optional
        The Chromium executable (default: ``$CHROMIUM`` or one found on ``PATH``).
    root : Path, optional
        Screenshots are named after each page's path relative to ``root`` (default: the
        page's file name).

    Returns
    -------
    list of PageResult
        One per page, in order.

    Raises
    ------
    FileNotFoundError
        If no Chromium executable is found.
    """
    exe = find_chromium(chromium)
    if exe is None:
        raise FileNotFoundError("no Chromium found: apt-get install -y chromium, or set $CHROMIUM")
    if screenshots is not None:
        screenshots.mkdir(parents=True, exist_ok=True)
    names = [
        (p.relative_to(root) if root else Path(p.name)).with_suffix("").as_posix().replace("/", "__")
        for p in pages
    ]
    return asyncio.run(_check_pages(exe, list(pages), screenshots, names))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("html_dir", type=Path, help="the built book, e.g. _build/html")
    ap.add_argument("pages", nargs="*", help="pages relative to HTML_DIR (default: all)")
    ap.add_argument("--screenshots", type=Path, default=None,
                    help="directory for the screenshots (default: HTML_DIR/../page-check)")
    ap.add_argument("--no-screenshots", action="store_true")
    ap.add_argument("--chromium", default=None, help="Chromium executable")
    args = ap.parse_args(argv)

    html_dir = args.html_dir.resolve()
    pages = [html_dir / p for p in args.pages] if args.pages else book_pages(html_dir)
    missing = [p for p in pages if not p.is_file()]
    if missing or not pages:
        print("no such page(s): " + ", ".join(map(str, missing or [html_dir])), file=sys.stderr)
        return 2
    shots = None if args.no_screenshots else (args.screenshots or html_dir.parent / "page-check")
    try:
        results = check_pages(pages, shots, args.chromium, root=html_dir)
    except (FileNotFoundError, RuntimeError) as err:
        print(f"check_pages: {err}", file=sys.stderr)
        return 2
    bad = 0
    for r in results:
        rel = r.page.relative_to(html_dir)
        status = "ok" if not r.overflows else f"{len(r.overflows)} element(s) wider than the column"
        print(f"{rel}: {status} ({r.height} px tall)")
        for o in r.overflows:
            print(f"    {o}")
        bad += bool(r.overflows)
    if shots is not None:
        print(f"screenshots ({WIDTH} px wide): {shots}")
    print(f"{len(results) - bad} of {len(results)} page(s) fit at {WIDTH} px")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
