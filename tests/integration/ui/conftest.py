"""A live Squall server and a real headless Chromium driven by Playwright.

Chromium is Debian's (``/usr/bin/chromium``; scripts/test-deps installs it);
Playwright drives it through its ``executable_path``, so no browser is
downloaded. Each test gets a fresh page of its own, signed in as the admin
through the sign-in form unless it asks for ``anonymous_page``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import struct
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.server import PASSWORD, Server

SCREENSHOTS = Path(__file__).resolve().parents[3] / "docs" / "screenshots"


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


# Per module, not per session: Playwright's synchronous API keeps an event
# loop of its own running while it is started, and tests that come after
# (asyncio.run) must not find it there.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    binary = chromium_binary()
    if binary is None:
        if os.environ.get("CI"):
            raise RuntimeError("chromium is missing: run scripts/test-deps")
        pytest.skip("Chromium not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    manager = sync_playwright()
    pw = manager.start()
    try:
        browser = pw.chromium.launch(
            executable_path=binary,
            headless=True,
            # Root in a container: Chromium's sandbox needs user namespaces.
            chromium_sandbox=False,
            args=["--disable-dev-shm-usage", "--disable-gpu"],
        )
        yield browser
        browser.close()
    finally:
        stop_within(pw, driver_pid(manager))


class _StopHung(Exception):
    pass


def stop_within(pw: Any, driver: int | None, grace: float = 10.0) -> None:
    """Stop Playwright, which waits until the pipe from its driver closes.
    Once in a few hundred runs on a loaded machine it never did: after a
    grace period the driver and everything it started (the browser's
    processes hold the pipe too) are killed; if even that does not end the
    wait, it is interrupted (a signal raised in the waiting thread) and the
    module goes on without it rather than hang the suite."""
    done = threading.Event()
    interruptible = threading.current_thread() is threading.main_thread()

    def interrupt(_signum: int, _frame: Any) -> None:
        if not done.is_set():
            raise _StopHung

    def rescue() -> None:
        kill_tree(driver)
        if interruptible and not done.wait(grace):
            signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGUSR1)

    previous = signal.signal(signal.SIGUSR1, interrupt) if interruptible else None
    watchdog = threading.Timer(grace, rescue)
    watchdog.daemon = True
    watchdog.start()
    try:
        pw.stop()
    except _StopHung:
        print("Playwright did not stop after its driver was killed; going on without it")
    finally:
        done.set()
        watchdog.cancel()
        if interruptible:
            signal.signal(signal.SIGUSR1, previous)


def driver_pid(manager: Any) -> int | None:
    proc = getattr(getattr(getattr(manager, "_client", None), "_transport", None), "_proc", None)
    return getattr(proc, "pid", None)


def kill_tree(pid: int | None) -> None:
    """SIGKILL ``pid`` and its descendants (found through /proc)."""
    if pid is None:
        return
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    doomed, todo = [], [pid]
    while todo:
        current = todo.pop()
        doomed.append(current)
        todo.extend(children.get(current, []))
    for victim in doomed:
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("ui") / "data").start()
    yield srv
    srv.stop()


@pytest.fixture
def anonymous_page(browser: Any, ui_server: Server) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1366, "height": 850}, base_url=ui_server.url)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_default_timeout(15_000)
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def sign_in(page: Any, user: str = "admin", password: str = PASSWORD) -> None:
    page.goto("/ui/")
    page.get_by_label("User").fill(user)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.locator("#whoami").wait_for()


@pytest.fixture
def page(anonymous_page: Any) -> Any:
    sign_in(anonymous_page)
    return anonymous_page


def screenshot(page: Any, name: str) -> Path:
    """Save a screenshot for the user guide and check it is not blank."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    data = page.screenshot(path=str(path), full_page=False)
    assert not png_is_blank(data), f"{name}: the screenshot is blank"
    return path


def png_is_blank(data: bytes) -> bool:
    """Whether a PNG is (nearly) one colour: its filtered scanlines are then
    almost all zero bytes. A page with text, lines and badges is not."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, b""
    while pos < len(data):
        length = struct.unpack(">I", data[pos : pos + 4])[0]
        kind = data[pos + 4 : pos + 8]
        if kind == b"IDAT":
            idat += data[pos + 8 : pos + 8 + length]
        pos += 12 + length
    raw = zlib.decompress(idat)
    busy = len(raw) - raw.count(0)
    # One colour filters to a handful of distinct bytes; one heading on an
    # empty page already gives ~200, and 1/2000 non-zero bytes.
    return len(set(raw)) < 32 or busy < len(raw) / 2500
