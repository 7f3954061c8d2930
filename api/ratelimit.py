"""Rate limits of logins (per client IP and per account) and of applications (per person): fixed-window counters
in Redis, shared by every web process.

Limits are app.config strings such as "10/minute" (see `LIMITS`); `RATELIMIT_ENABLED = False` turns them off.
Every attempt counts, failed ones included, so guessing passwords or ID numbers costs the same as logging in.
With Redis down a limit either lets the attempt through (logged loudly) or, where `fail_closed`, refuses it
with 503 LOGIN_UNAVAILABLE: a staff password must never be open to unlimited guesses because Redis is away.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import re
from dataclasses import dataclass

import redis
from flask import current_app, request

from api.errors import ApiError
from api.extensions import redis_client

log = logging.getLogger(__name__)

# config key -> default; one pair per limited action
LIMITS = {
    "RATELIMIT_LOGIN_PER_ACCOUNT": "10/minute",
    "RATELIMIT_LOGIN_PER_IP": "30/minute",
    # generous for a family binding its relatives, tight for anyone trying name / ID number pairs one by one
    "RATELIMIT_APPLY_PER_PERSON": "20/hour",
    # 12333 / self-service terminals: a person looks himself up a few times; nobody needs to try many card numbers
    "RATELIMIT_TERMINAL_PER_ID": "10/hour",
    "RATELIMIT_TERMINAL_PER_CLIENT": "120/hour",
}
_PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_RULE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*(second|minute|hour|day|s|m|h|d)s?\s*$")
_SHORT = {"s": "second", "m": "minute", "h": "hour", "d": "day"}

# INCR, and start the window on the first hit; a key somehow left without a TTL gets one, never lives forever.
_HIT = """
local result = {}
for i, key in ipairs(KEYS) do
  local n = redis.call('INCR', key)
  local ttl = redis.call('TTL', key)
  if n == 1 or ttl < 0 then
    redis.call('EXPIRE', key, ARGV[i])
    ttl = tonumber(ARGV[i])
  end
  result[#result + 1] = n
  result[#result + 1] = ttl
end
return result
"""


@dataclass(frozen=True)
class Rule:
    limit: int
    period: int  # seconds


def parse_rule(text: str) -> Rule:
    """Parses "10/minute", "30/hour" or "5/10s" (5 per 10 seconds)."""
    match = _RULE.match(str(text))
    if not match:
        raise ValueError(f"bad rate limit {text!r}; expected e.g. '10/minute'")
    count, multiple, unit = match.groups()
    return Rule(int(count), int(multiple or 1) * _PERIODS[_SHORT.get(unit, unit)])


def rule(config_key: str) -> Rule:
    return parse_rule(current_app.config.get(config_key) or LIMITS[config_key])


def counter_key(scope: str, dimension: str, value: str) -> str:
    """The Redis key of one counter; the value (an IP, a username, a channel code) is keyed-hashed, never stored."""
    digest = hmac.new(current_app.config["SECRET_KEY"].encode(), value.encode(), hashlib.sha256).hexdigest()[:32]
    return f"ratelimit:{scope}:{dimension}:{digest}"


def client_ip() -> str:
    # the peer, or behind TRUSTED_PROXIES reverse proxies the client they name (ProxyFix, see create_app)
    return request.remote_addr or "unknown"


UNAVAILABLE_RETRY_AFTER = 30  # seconds: about what a Redis restart or fail-over takes


def hit(scope: str, account: str, per_account: str = "RATELIMIT_LOGIN_PER_ACCOUNT",
        per_ip: str | None = "RATELIMIT_LOGIN_PER_IP", fail_closed: bool = False,
        unavailable_code: str = "LOGIN_UNAVAILABLE") -> None:
    """Counts one attempt of `scope` for `account` (and the caller's IP); over a limit → 429 RATE_LIMITED.

    When the counters cannot be reached: allowed, or with `fail_closed` 503 `unavailable_code` (Retry-After).
    """
    if not current_app.config.get("RATELIMIT_ENABLED", True):
        return
    checks = [(counter_key(scope, "account", account), rule(per_account))]
    if per_ip:
        checks.append((counter_key(scope, "ip", client_ip()), rule(per_ip)))
    try:
        raw = redis_client().eval(_HIT, len(checks), *[k for k, _ in checks], *[r.period for _, r in checks])
    except redis.RedisError as exc:
        if fail_closed:
            log.error("rate limiter unavailable, refusing %s attempt: %s", scope, type(exc).__name__)
            raise ApiError(unavailable_code, 503, None,
                           headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER)}) from None
        # person logins and applications keep working while Redis is down; the outage is logged loudly
        log.error("rate limiter unavailable, allowing %s attempt: %s", scope, type(exc).__name__)
        return
    waits = [int(raw[2 * i + 1]) for i, (_, r) in enumerate(checks) if int(raw[2 * i]) > r.limit]
    if waits:
        retry_after = max(1, max(waits))
        log.warning("rate limited: %s", scope)
        raise ApiError("RATE_LIMITED", 429, None, headers={"Retry-After": str(retry_after)},
                       msg=f"操作过于频繁，请 {_human(retry_after)}后再试")


def _human(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} 秒"
    minutes = -(-seconds // 60)
    return f"{minutes} 分钟" if minutes < 60 else f"{-(-minutes // 60)} 小时"
