"""``ani controller`` in the foreground: it serves its API, stops on SIGTERM, and leaves neither
the controller process nor the directory it made for its topology file behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ANI = str(Path(sys.executable).with_name("ani"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.root
def test_controller_stops_on_sigterm_and_removes_its_directory(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    api = _free_port()
    proc = subprocess.Popen([ANI, "controller", "--topology", "topozoo/Abilene", "--ofp-port", str(_free_port()),
                             "--api-port", str(api)], env={**os.environ, "TMPDIR": str(tmp_path)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{api}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.poll() else "no API"
            time.sleep(0.3)
        assert list(tmp_path.glob("ani-controller-*/topology.json"))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert proc.returncode == 0
    assert not list(tmp_path.glob("ani-controller-*"))
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{api}/health", timeout=1)
