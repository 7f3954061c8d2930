"""Settings read from the environment through small typed helpers; defaults give the embedded set-up."""
import os
import secrets
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def env_int(name: str, default: int) -> int:
    value = env_str(name)
    return int(value) if value is not None else default


def env_float(name: str, default: float) -> float:
    value = env_str(name)
    return float(value) if value is not None else default


def env_bool(name: str, default: bool = False) -> bool:
    value = env_str(name)
    return default if value is None else value.lower() in ("1", "true", "yes", "on")


def instance_path() -> Path:
    path = Path(env_str("INSTANCE_PATH", str(ROOT / "instance")))
    path.mkdir(parents=True, exist_ok=True)
    return path


def database_url() -> str:
    url = env_str("DATABASE_URL")
    if not url:
        return f"sqlite:///{instance_path() / 'app.db'}"
    # Accept the usual libpq spellings and use the psycopg 3 driver.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def embedded_redis_socket() -> Path:
    # A unix socket path must stay short (about 100 bytes); deep checkouts fall back to the temp directory.
    sock = instance_path() / "redis.sock"
    if len(str(sock)) > 100:
        import hashlib
        import tempfile
        digest = hashlib.sha1(str(sock).encode()).hexdigest()[:10]
        sock = Path(tempfile.gettempdir()) / f"gongji-{digest}.sock"
    return sock


def redis_url() -> str:
    return env_str("REDIS_URL") or f"unix://{embedded_redis_socket()}"


def uses_embedded_redis() -> bool:
    return env_str("REDIS_URL") is None


def secret_key() -> str:
    """SECRET_KEY from the environment, else one generated once into instance/ and kept there."""
    key = env_str("SECRET_KEY")
    if key:
        return key
    path = instance_path() / "secret_key"
    if not path.exists():
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(secrets.token_urlsafe(48))
        tmp.chmod(0o600)
        try:
            os.link(tmp, path)  # atomic: the first process to create it wins
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip()


def upload_dir() -> Path:
    path = Path(env_str("UPLOAD_DIR", str(instance_path() / "uploads")))
    path.mkdir(parents=True, exist_ok=True)
    return path


# --- production safety ------------------------------------------------------------------------------------------

DEV_WECHAT_TOKEN = "gongji-dev-token"
CHANNEL_MODES = ("simulated", "real")
# secrets seen in this repository's docs, tests and examples: never acceptable outside them
KNOWN_SECRET_KEYS = frozenset({"test-secret-key", "dev", "secret", "changeme", "change-me", "gongji-dev-secret"})
MIN_SECRET_KEY_LENGTH = 32


class UnsafeSettings(RuntimeError):
    """The settings would run the service unsafely (or not at all); the message names each offending setting."""


def check_settings(config) -> None:
    """Refuses settings that cannot work anywhere, and, with APP_ENV=production, those fit only for a demo:
    simulated channel adapters (logins would take any code as an openid), the development WECHAT_TOKEN, a
    SECRET_KEY that is generated per machine (tokens would not verify across machines) or known/short."""
    problems = []
    mode = config.get("CHANNEL_ADAPTERS")
    if mode not in CHANNEL_MODES:
        problems.append(f"CHANNEL_ADAPTERS must be one of {'|'.join(CHANNEL_MODES)}, not {mode!r}")
    if mode == "real":
        problems += [f"{name} must be set when CHANNEL_ADAPTERS=real" for name in
                     ("WECHAT_APPID", "WECHAT_APP_SECRET", "WECHAT_TEMPLATE_ID") if not config.get(name)]
    if config.get("APP_ENV") == "production":
        if mode == "simulated":
            problems.append("CHANNEL_ADAPTERS=simulated is refused with APP_ENV=production: set CHANNEL_ADAPTERS=real")
        if config.get("SIMULATED_CHANNEL_FAULTS"):
            problems.append("SIMULATED_CHANNEL_FAULTS must be off with APP_ENV=production")
        if config.get("WECHAT_TOKEN") in (None, "", DEV_WECHAT_TOKEN):
            problems.append("WECHAT_TOKEN is the development default: set the official account's token")
        key = config.get("SECRET_KEY") or ""
        if _is_generated_secret(key):
            problems.append("SECRET_KEY is generated into instance/secret_key: set it in the environment, the same on "
                            "every machine")
        elif key in KNOWN_SECRET_KEYS or len(key) < MIN_SECRET_KEY_LENGTH:
            problems.append(f"SECRET_KEY is a known or short value: set a random one of at least "
                            f"{MIN_SECRET_KEY_LENGTH} characters")
    if problems:
        raise UnsafeSettings("refusing to start: " + "; ".join(problems))


def _is_generated_secret(key: str) -> bool:
    path = instance_path() / "secret_key"
    return path.exists() and path.read_text().strip() == key
