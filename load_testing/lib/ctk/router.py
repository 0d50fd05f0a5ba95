"""The router as a child process: start it on a config (output to a log file), wait until
GET /readyz on its management address answers 200, stop it with SIGTERM and, when it has not
exited after the grace period, SIGKILL.

Always cleaned up: `with Router(...) as r:` stops it on leaving the block, and every router
started and not yet stopped is stopped at interpreter exit (atexit; a script that may get
SIGTERM should turn it into an exception or SystemExit, as chaos_driver.py does).
"""

import atexit
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

from .rawhttp import url_get

_RUNNING = set()
_LOCK = threading.Lock()


class Router:
    """One router process. name: how messages call it; upgrade: start with -u (take the
    listeners over from the process on the config's upgrade socket)."""

    def __init__(self, binary, config, log, cwd=None, upgrade=False, env=None, name="router"):
        self.binary, self.config, self.log = str(binary), str(config), Path(log)
        self.cwd, self.upgrade, self.name = cwd, upgrade, name
        self.env = dict(os.environ if env is None else env)
        self.env.setdefault("RUST_LOG", "info")
        self.proc = None

    def start(self):
        args = [self.binary] + (["-u"] if self.upgrade else []) + ["-c", self.config]
        with open(self.log, "wb") as f:
            self.proc = subprocess.Popen(args, cwd=self.cwd, stdout=f, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=self.env)
        with _LOCK:
            _RUNNING.add(self)
        return self

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    @property
    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self):
        return self.proc.poll() if self.proc else None

    def log_text(self):
        return self.log.read_text(errors="replace")

    def wait_ready(self, mgmt, timeout=30.0, stop=None):
        """Polls http://MGMT/readyz until 200. RuntimeError when the process exits first or
        timeout passes; returns False when the `stop` event is set meanwhile."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if stop is not None and stop.is_set():
                return False
            if not self.alive:
                raise RuntimeError(f"{self.name} exited with {self.returncode}; see {self.log}")
            if url_get(f"http://{mgmt}/readyz", timeout=1)[0] == 200:
                return True
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready within {timeout:g} s")

    def signal(self, signo):
        if self.alive:
            os.kill(self.proc.pid, signo)

    def stop(self, timeout=10.0):
        """SIGTERM, up to timeout seconds for the graceful shutdown, then SIGKILL. Returns
        the exit code."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        with _LOCK:
            _RUNNING.discard(self)
        return self.returncode

    def __enter__(self):
        return self if self.proc else self.start()

    def __exit__(self, *_exc):
        self.stop()


@atexit.register
def _stop_all():
    with _LOCK:
        left = list(_RUNNING)
    for r in left:
        r.stop()
