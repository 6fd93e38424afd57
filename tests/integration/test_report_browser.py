"""report.html in a real browser: headless Chromium loads the page offline and every plot is in the DOM.

Debian's `chromium` is installed with apt-get when missing and we are root; otherwise the test is skipped with
the reason (CI installs it beforehand, see .ci/run).
"""

import base64
import os
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from edgekd.report.render import write_report
from tests.unit.test_report_html import HOSTILE, rich_report

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _install_chromium() -> None:
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip("needs chromium (apt-get install chromium); not root, so not installing it")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        try:
            done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
        except subprocess.TimeoutExpired:
            pytest.skip(f"could not install chromium: {' '.join(argv)} timed out")
        if done.returncode != 0:
            pytest.skip(f"could not install chromium: {(done.stderr.strip().splitlines() or ['?'])[-1]}")


@pytest.fixture(scope="module")
def browser() -> str:
    found = next((path for name in BROWSERS if (path := shutil.which(name))), None)
    if found is None:
        _install_chromium()
        found = shutil.which("chromium")
    if found is None:
        pytest.skip("chromium installed but not on PATH")
    return found


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report")
    return write_report(rich_report(), out)["html"]


def _headless(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    argv = [browser, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", "--hide-scrollbars",
            f"--user-data-dir={profile}", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def test_page_loads_with_every_plot_in_the_dom(browser: str, page: Path, tmp_path: Path) -> None:
    done = _headless(browser, tmp_path / "profile", "--dump-dom", page.as_uri())
    dom = done.stdout
    assert done.returncode == 0 and "<h1>" in dom, done.stderr[-2000:]
    assert "edgekd report — tiny" in dom and "Teacher vs student vs int8" in dom
    assert "<script" not in dom and HOSTILE not in dom  # the hostile recipe name stayed text
    for anchor in ("plot-pareto", "plot-latency"):
        figure = re.search(rf'<figure class="plot" id="{anchor}">(.*?)</figure>', dom, re.S)
        assert figure, anchor
        assert "<svg" in figure.group(1) or "<img" in figure.group(1), anchor
        for uri in re.findall(r'<img[^>]*src="(data:[^"]+)"', figure.group(1)):
            _assert_png(uri)
    assert dom.count("<table") >= 7


def test_page_renders_to_a_screenshot(browser: str, page: Path, tmp_path: Path) -> None:
    shot = tmp_path / "shot.png"
    done = _headless(browser, tmp_path / "profile", "--window-size=1200,1600", f"--screenshot={shot}", page.as_uri())
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    width, height = _png_size(shot.read_bytes())
    assert (width, height) == (1200, 1600)
    assert shot.stat().st_size > 50_000  # tables and two plots, not a blank page


def _assert_png(uri: str) -> None:
    header, _, payload = uri.partition(",")
    assert header == "data:image/png;base64", header
    data = base64.b64decode(payload, validate=True)
    width, height = _png_size(data)
    assert width > 0 and height > 0


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIGNATURE
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    chunk = data[12:29]
    assert struct.unpack(">I", data[29:33])[0] == zlib.crc32(chunk)
    return struct.unpack(">II", data[16:24])
