"""Check a report in a real browser: Debian's headless ``chromium`` over the DevTools protocol.

The browser runs with ``--remote-debugging-pipe`` (commands on fd 3, replies on fd 4, each
message a JSON object ended by a NUL byte), so no port and no websocket library are needed.
:func:`check_report` opens every page of a report at a given width and measures what a
reader would see: horizontal overflow, images that did not load, tables wider than the page.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from harness.errors import CampaignError
from harness.fileio import atomic_write

MEASURE = """JSON.stringify({
  scroll_width: document.documentElement.scrollWidth,
  height: document.documentElement.scrollHeight,
  images: [...document.images].map(i => ({src: i.src.slice(0, 80), loaded: i.complete && i.naturalWidth > 0})),
  wide_tables: [...document.querySelectorAll('table')].filter(t => t.getBoundingClientRect().right > innerWidth)
                 .length,
  sections: [...document.querySelectorAll('h2[id]')].map(h => h.id),
})"""


def chromium_path() -> str:
    """The chromium binary, or a :class:`CampaignError` saying how to install it."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        raise CampaignError("chromium is not installed; install Debian's package (make deb-test, or "
                            "apt-get install --no-install-recommends chromium)")
    return path


class Chromium:
    """A headless chromium with one tab, driven over the DevTools pipe; a context manager
    (the browser and its temporary profile are removed on exit, error or not)."""

    # close_fds=False: the child keeps only fds 3 and 4 from ``fds`` (dup2 makes them
    # inheritable); every descriptor Python opens is non-inheritable (PEP 446).

    def __init__(self, width: int = 1280, height: int = 900, timeout_s: float = 60.0):
        self.width, self.height, self.timeout_s = width, height, timeout_s
        self._proc = None

    def __enter__(self) -> "Chromium":
        self._profile = tempfile.mkdtemp(prefix="ani-chromium-")
        to_browser, self._w = os.pipe()
        self._r, from_browser = os.pipe()

        def fds():   # in the child: the protocol's fixed descriptors (via fresh copies, in case
            a, b = os.dup(to_browser), os.dup(from_browser)   # either pipe end is fd 3 or 4)
            os.dup2(a, 3)
            os.dup2(b, 4)
            os.set_inheritable(3, True)   # dup2 onto itself keeps close-on-exec
            os.set_inheritable(4, True)

        try:
            self._proc = subprocess.Popen(
                [chromium_path(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--remote-debugging-pipe", f"--user-data-dir={self._profile}", "about:blank"],
                close_fds=False, preexec_fn=fds, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL)
        finally:
            os.close(to_browser)
            os.close(from_browser)
        self._buf, self._n = b"", 0
        try:
            target = self._call("Target.createTarget", {"url": "about:blank"})["targetId"]
            self._session = self._call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            self._call("Emulation.setDeviceMetricsOverride", {"width": self.width, "height": self.height,
                                                              "deviceScaleFactor": 1, "mobile": False}, True)
            self._call("Page.enable", {}, True)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self._proc is not None:
            try:
                os.write(self._w, json.dumps({"id": 0, "method": "Browser.close"}).encode() + b"\0")
                self._proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait()
            self._proc = None
        for fd in (self._w, self._r):
            try:
                os.close(fd)
            except OSError:
                pass
        # chromium's helper processes may still write into the profile as the browser exits
        for _ in range(20):
            shutil.rmtree(self._profile, ignore_errors=True)
            if not os.path.exists(self._profile):
                break
            time.sleep(0.1)

    # ------------------------------------------------------------------ protocol
    def _call(self, method: str, params: dict, in_page: bool = False) -> dict:
        self._n += 1
        msg = {"id": self._n, "method": method, "params": params}
        if in_page:
            msg["sessionId"] = self._session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        reply = self._wait(lambda m: m.get("id") == self._n, method)
        if "error" in reply:
            raise CampaignError(f"chromium refused {method}: {reply['error'].get('message')}")
        return reply.get("result", {})

    def _wait(self, match, what: str) -> dict:
        deadline = time.monotonic() + self.timeout_s
        while True:
            while b"\0" in self._buf:
                raw, self._buf = self._buf.split(b"\0", 1)
                msg = json.loads(raw)
                if match(msg):
                    return msg
            if time.monotonic() > deadline:
                raise CampaignError(f"chromium did not answer {what} within {self.timeout_s:.0f} s")
            chunk = os.read(self._r, 1 << 20)
            if not chunk:
                raise CampaignError(f"chromium exited while waiting for {what}")
            self._buf += chunk

    # ------------------------------------------------------------------ pages
    def open(self, path: str | Path) -> dict:
        """Load a local file, wait for its load event (images included), return :data:`MEASURE`."""
        self._call("Page.navigate", {"url": Path(path).resolve().as_uri()}, True)
        self._wait(lambda m: m.get("method") == "Page.loadEventFired", f"loading {path}")
        out = self._call("Runtime.evaluate", {"expression": MEASURE, "returnByValue": True}, True)
        return json.loads(out["result"]["value"])

    def screenshot(self, path: str | Path, out: str | Path, max_height: int = 4000) -> Path:
        """A PNG of ``path`` at the browser's width, down to ``max_height`` pixels."""
        m = self.open(path)
        shot = self._call("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": self.width, "height": min(m["height"], max_height), "scale": 1}}, True)
        atomic_write(Path(out), base64.b64decode(shot["data"]))
        return Path(out)


def check_report(report_dir: str | Path, width: int = 1280) -> list[dict]:
    """Open ``report.html`` and every page under ``scenarios/`` at ``width`` px; one record per
    page: its measurements and ``problems`` (horizontal overflow, images not loaded, tables
    wider than the window; empty when the page reads well)."""
    report_dir = Path(report_dir)
    pages = [report_dir / "report.html", *sorted((report_dir / "scenarios").glob("*.html"))]
    rows = []
    with Chromium(width=width) as browser:
        for p in pages:
            m = browser.open(p)
            problems = []
            if m["scroll_width"] > width:
                problems.append(f"{m['scroll_width'] - width} px of horizontal overflow")
            bad = [i["src"] for i in m["images"] if not i["loaded"]]
            if bad:
                problems.append(f"{len(bad)} images did not load ({', '.join(bad[:3])})")
            if m["wide_tables"]:
                problems.append(f"{m['wide_tables']} tables wider than the window")
            rows.append({"page": str(p.relative_to(report_dir)), **m, "problems": problems})
    return rows
