"""A minimal Chrome DevTools Protocol client over --remote-debugging-pipe (no extra package).

Chromium reads JSON commands from file descriptor 3 and writes replies and events to descriptor 4,
each message ending in a NUL byte. One reader thread files replies by id and events by session.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
from collections import defaultdict
from typing import Any

BASE_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
    "--mute-audio",
    "--font-render-hinting=none",
    # a dead proxy: any request that is not a file reaches nothing, even where unshare is refused
    "--proxy-server=http://127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>",
)


class CDPError(RuntimeError):
    """A command answered with an error, or the browser went away."""


def find_chromium() -> str | None:
    """Path of Debian's chromium (or another Chromium-family browser), None when absent."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    return None


def network_namespace_works() -> bool:
    """True where `unshare -n` starts a process without network (root, or user namespaces)."""
    if not shutil.which("unshare"):
        return False
    try:
        probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, timeout=20)
        return probe.returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


class Browser:
    """One headless Chromium driven over a pipe; `offline=True` starts it in a network namespace
    with no interface but loopback (when the system allows it; the dead proxy applies anyway)."""

    def __init__(self, binary: str, offline: bool = True, timeout: float = 120.0) -> None:
        self.timeout = timeout
        self._profile = tempfile.TemporaryDirectory(prefix="check-book-")
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        flags = [*BASE_FLAGS, "--remote-debugging-pipe", f"--user-data-dir={self._profile.name}"]
        # bash moves the two pipe ends to descriptors 3 and 4, where Chromium expects them
        # (through copies above 9 first, so that it works whichever numbers the pipes got)
        r, w = to_chrome_r, from_chrome_w
        shell = (
            f"exec {{A}}<&{r} {{B}}>&{w}; exec {r}<&- {w}>&-; "
            'exec "$0" "$@" 3<&$A 4>&$B {A}<&- {B}>&-'
        )
        cmd = ["bash", "-c", shell, binary, *flags, "about:blank"]
        self.offline_namespace = offline and network_namespace_works()
        if self.offline_namespace:
            cmd = ["unshare", "-n", *cmd]
        self.proc = subprocess.Popen(
            cmd,
            pass_fds=(to_chrome_r, from_chrome_w),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._next_id = 0
        self._replies: dict[int, dict[str, Any]] = {}
        self._events: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
        self._cv = threading.Condition()
        self._closed = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        buf = b""
        with os.fdopen(self._from_chrome, "rb", buffering=0) as pipe:
            while chunk := pipe.read(1 << 16):
                buf += chunk
                *messages, buf = buf.split(b"\0")
                with self._cv:
                    for raw in messages:
                        msg = json.loads(raw)
                        if "id" in msg:
                            self._replies[msg["id"]] = msg
                        else:
                            self._events[msg.get("sessionId")].append(msg)
                    self._cv.notify_all()
        with self._cv:
            self._closed = True
            self._cv.notify_all()

    def send(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> dict[str, Any]:
        """Send one command and wait for its reply's result."""
        with self._cv:
            self._next_id += 1
            mid = self._next_id
        msg: dict[str, Any] = {"id": mid, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        with self._cv:
            if not self._cv.wait_for(lambda: mid in self._replies or self._closed, self.timeout):
                raise CDPError(f"{method}: no reply within {self.timeout:.0f} s")
            if mid not in self._replies:
                raise CDPError(f"{method}: the browser exited")
            reply = self._replies.pop(mid)
        if "error" in reply:
            raise CDPError(f"{method}: {reply['error'].get('message', reply['error'])}")
        return reply.get("result", {})

    def wait_event(self, session: str, method: str, timeout: float | None = None) -> dict:
        """Wait for (and consume) the first event `method` of a session."""

        def found() -> dict | None:
            for i, event in enumerate(self._events[session]):
                if event["method"] == method:
                    return self._events[session].pop(i)
            return None

        got: list[dict] = []
        with self._cv:
            self._cv.wait_for(
                lambda: bool(got.append(e) or True if (e := found()) else self._closed),
                timeout or self.timeout,
            )
        event = got[0] if got else None
        if event is None:
            raise CDPError(f"{method}: not seen within {timeout or self.timeout:.0f} s")
        return event

    def events(self, session: str, method: str) -> list[dict[str, Any]]:
        """Every event `method` a session has received so far (not consumed)."""
        with self._cv:
            return [e for e in self._events[session] if e["method"] == method]

    def new_page(self, width: int, height: int) -> str:
        """A new tab with a fixed viewport; returns its session id."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Network", "Log"):
            self.send(f"{domain}.enable", session=session)
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            session,
        )
        self.send("Network.emulateNetworkConditions", _OFFLINE, session)
        return session

    def close_page(self, session: str) -> None:
        info = self.send("Target.getTargetInfo", session=session)["targetInfo"]
        self.send("Target.closeTarget", {"targetId": info["targetId"]})
        with self._cv:
            self._events.pop(session, None)

    def evaluate(self, session: str, expression: str, await_promise: bool = False) -> Any:
        """The JSON value of a JavaScript expression in the page."""
        result = self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": await_promise},
            session,
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise CDPError(f"page script failed: {text}")
        return result["result"].get("value")

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except CDPError:
            pass
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_chrome)
        self._profile.cleanup()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_OFFLINE = {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
