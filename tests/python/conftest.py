"""Starts the server under test for the Python client tests.

The server is ferrio's testkit example (target/release/examples/testkit: the hub plus the test
events of tests/node/README.md) on a free loopback port. FERRIO_TEST_SERVER=reference runs the
Node.js reference (tests/node/reference/testkit.js) instead, to check the tests themselves.
"""

import os
import signal
import socket
import subprocess
import threading
import time
import urllib.request

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, env=None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        if os.environ.get("FERRIO_TEST_SERVER") == "reference":
            cmd = ["node", os.path.join(ROOT, "tests", "node", "reference", "testkit.js")]
        else:
            binary = os.path.join(ROOT, "target", "release", "examples", "testkit")
            if not os.path.exists(binary):
                raise RuntimeError(f"{binary} is missing: run cargo build --release --examples first")
            cmd = [binary]
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("FERRIO_")}
        child_env.update(RUST_LOG=os.environ.get("RUST_LOG", "info"), FERRIO_HOST="127.0.0.1",
                         FERRIO_PORT=str(self.port))
        child_env.update(env or {})
        self.output = []
        self.proc = subprocess.Popen(cmd, env=child_env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        pidfile = os.environ.get("FERRIO_TEST_PIDFILE")
        if pidfile:
            with open(pidfile, "a") as f:
                f.write(f"{self.proc.pid}\n")
        threading.Thread(target=self._drain, daemon=True).start()
        self._wait_ready(20)

    def _drain(self):
        for line in self.proc.stdout:
            self.output.append(line.decode(errors="replace"))

    def logs(self):
        return "".join(self.output)

    def _wait_ready(self, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.logs()}")
            if "listening on" in self.logs():
                try:
                    with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as r:
                        if r.status == 200:
                            return
                except OSError:
                    pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server did not serve within {seconds} s:\n{self.logs()}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture(scope="session")
def server():
    srv = Server(env={"FERRIO_NAMESPACES": "/,/admin"})
    yield srv
    srv.stop()
