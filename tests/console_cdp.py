#!/usr/bin/env python3
"""A small Chrome DevTools Protocol driver for tests/console.rs (standard library only).

Starts headless Chromium with --remote-debugging-pipe (the protocol on file
descriptors 3 and 4, NUL-separated JSON: no port, no websocket library) and answers
one JSON command per stdin line with one JSON line on stdout:

  {"cmd": "goto", "url": "http://..."}
  {"cmd": "eval", "expr": "document.title"}              -> {"ok": true, "value": ...}
  {"cmd": "wait", "expr": "...", "timeout": 60}          -> polls until truthy
  {"cmd": "screenshot", "path": "target/x.png"}
  {"cmd": "quit"}

Every answer is {"ok": true, ...} or {"ok": false, "error": "..."}. Every wait on the
browser is bounded; Chromium is killed on quit, on stdin EOF and on any error.

usage: console_cdp.py CHROMIUM_BINARY
"""

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time

CALL_TIMEOUT = 30.0


class Browser:
    def __init__(self, binary):
        to_chrome_r, to_chrome_w = os.pipe()
        from_chrome_r, from_chrome_w = os.pipe()
        # Out of the way of 3 and 4, which the child's ends are moved to.
        hi_r = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD_CLOEXEC, 100)
        hi_w = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD_CLOEXEC, 100)
        os.close(to_chrome_r)
        os.close(from_chrome_w)

        def child_fds():
            os.dup2(hi_r, 3)
            os.dup2(hi_w, 4)

        self.profile = tempfile.mkdtemp(prefix="kavka-chromium-")
        self.proc = subprocess.Popen(
            [
                binary,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--remote-debugging-pipe",
                "--user-data-dir=" + self.profile,
                "--window-size=1440,960",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=child_fds,
            close_fds=False,
        )
        os.close(hi_r)
        os.close(hi_w)
        self.w = to_chrome_w
        self.r = from_chrome_r
        self.buf = b""
        self.next_id = 0
        self.session = None
        targets = self.call("Target.getTargets")["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        self.session = self.call(
            "Target.attachToTarget", {"targetId": page["targetId"], "flatten": True}
        )["sessionId"]
        self.call("Page.enable")
        self.call("Runtime.enable")
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1440, "height": 960, "deviceScaleFactor": 1, "mobile": False},
        )

    def call(self, method, params=None, timeout=CALL_TIMEOUT):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if self.session and not method.startswith("Target."):
            msg["sessionId"] = self.session
        os.write(self.w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self.buf:
                raw, self.buf = self.buf.split(b"\0", 1)
                answer = json.loads(raw)
                if answer.get("id") == self.next_id:
                    if "error" in answer:
                        raise RuntimeError(f"{method}: {answer['error']}")
                    return answer.get("result", {})
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{method}: no answer from Chromium within {timeout} s")
            ready, _, _ = select.select([self.r], [], [], left)
            if ready:
                chunk = os.read(self.r, 1 << 20)
                if not chunk:
                    raise RuntimeError("Chromium closed the DevTools pipe (it exited)")
                self.buf += chunk

    def eval(self, expr):
        r = self.call(
            "Runtime.evaluate",
            {"expression": expr, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            raise RuntimeError(d.get("exception", {}).get("description") or d.get("text"))
        return r.get("result", {}).get("value")

    def close(self):
        try:
            self.proc.kill()
            self.proc.wait(timeout=10)
        except Exception:
            pass
        shutil.rmtree(self.profile, ignore_errors=True)


def handle(b, cmd):
    c = cmd["cmd"]
    if c == "goto":
        b.call("Page.navigate", {"url": cmd["url"]})
        return {}
    if c == "eval":
        return {"value": b.eval(cmd["expr"])}
    if c == "wait":
        deadline = time.monotonic() + float(cmd.get("timeout", 60))
        value = None
        while time.monotonic() < deadline:
            try:
                value = b.eval(cmd["expr"])
                if value:
                    return {"value": value}
            except RuntimeError as e:  # the page is between loads
                value = f"(threw) {e}"
            time.sleep(0.05)
        raise TimeoutError(f"not true within {cmd.get('timeout', 60)} s: {cmd['expr']} (last: {value!r})")
    if c == "screenshot":
        png = base64.b64decode(b.call("Page.captureScreenshot", {"format": "png"})["data"])
        os.makedirs(os.path.dirname(cmd["path"]) or ".", exist_ok=True)
        with open(cmd["path"], "wb") as f:
            f.write(png)
        return {"bytes": len(png)}
    raise ValueError(f"unknown command {c!r}")


def main():
    b = Browser(sys.argv[1])
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            cmd = json.loads(line)
            if cmd.get("cmd") == "quit":
                break
            try:
                out = {"ok": True, **handle(b, cmd)}
            except Exception as e:  # reported to the test, which fails with it
                out = {"ok": False, "error": f"{type(e).__name__}: {e}"}
            print(json.dumps(out), flush=True)
    finally:
        b.close()


if __name__ == "__main__":
    main()
