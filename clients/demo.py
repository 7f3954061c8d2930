"""`make demo`: starts the service as `make run` does (web and workers under honcho, on the embedded Redis started
by api.embedded, which runs this module), waits until it is ready, runs the simulated clients with a small N against
it, and stops it. Exit status: the simulation's (1 on any 5xx or ledger mismatch)."""
import os
import signal
import subprocess
import sys
import time
import urllib.request

from clients import simulate

ROOT = simulate.ROOT


def wait_ready(url: str, server: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the service stopped (exit {server.returncode}) before it was ready")
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"the service at {url} was not ready within {seconds:.0f} s")


def main() -> int:
    port = os.environ.get("PORT", "5000")
    url = f"http://127.0.0.1:{port}"
    families = os.environ.get("DEMO_FAMILIES", "3")
    seconds = os.environ.get("DEMO_SECONDS", "15")
    env = dict(os.environ, PORT=port)
    # one machine plays the whole crowd: its logins come from one address, above the per-address limit
    env.setdefault("RATELIMIT_LOGIN_PER_IP", "100000")
    server = subprocess.Popen(["honcho", "start", "-f", "Procfile"], cwd=ROOT, env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL if os.environ.get("DEMO_QUIET") else None)
    try:
        wait_ready(url, server)
        print(f"家庭共济 service: {url}/ (staff console {url}/staff); {families} simulated families for {seconds} s")
        return simulate.main(["--url", url, "--families", families, "--seconds", seconds, "--prepare"])
    finally:
        os.killpg(server.pid, signal.SIGINT)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)


if __name__ == "__main__":
    sys.exit(main())
