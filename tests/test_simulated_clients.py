"""The simulated clients (F11) in CI: the service started exactly as `make run` starts it (embedded default: SQLite
and the embedded Redis, web and workers under honcho) in a fresh instance folder, and a small crowd of mini-program
users against it over HTTP. Any 5xx, a family that could not finish, or a ledger mismatch fails the run."""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from api import settings

FAMILIES, SECONDS = "3", "6"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, server: subprocess.Popen, log) -> None:
    deadline = time.monotonic() + 180  # the first `make run` migrates and seeds
    while time.monotonic() < deadline:
        assert server.poll() is None, f"make run stopped (exit {server.returncode}):\n{_tail(log)}"
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"make run was not ready in time:\n{_tail(log)}")


def _tail(log) -> str:
    log.flush()
    with open(log.name, encoding="utf-8", errors="replace") as f:
        return f.read()[-4000:]


def test_a_small_crowd_of_simulated_clients_against_make_run():
    instance = tempfile.mkdtemp(prefix="gj-sim-")
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "SIMULATED_CHANNEL_FAULTS", "MAKEFLAGS", "MFLAGS")}
    env.update(INSTANCE_PATH=instance, PORT=str(port), WEB_CONCURRENCY="2", WEB_THREADS="4",
               RATELIMIT_LOGIN_PER_IP="100000")  # one machine plays the whole crowd, from one address
    url = f"http://127.0.0.1:{port}"
    with open(os.path.join(instance, "make-run.log"), "w+", encoding="utf-8") as log:
        server = subprocess.Popen(["make", "--no-print-directory", "run"], cwd=settings.ROOT, env=env, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_ready(url, server, log)
            crowd = subprocess.run([sys.executable, "-m", "clients.simulate", "--url", url, "--families", FAMILIES,
                                    "--seconds", SECONDS, "--prepare"], cwd=settings.ROOT, env=env,
                                   capture_output=True, text=True, timeout=300)
        finally:
            os.killpg(server.pid, signal.SIGINT)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(10)
    report = crowd.stdout + crowd.stderr
    assert crowd.returncode == 0, report
    assert "ledger check: ok" in report and "5xx:" not in report and "failed:" not in report, report
    assert f"simulated families: {FAMILIES}" in report
