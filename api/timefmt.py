"""Times are stored in UTC and shown in Asia/Shanghai, ISO 8601 with the offset."""
import datetime as dt
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")


def local_iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(SHANGHAI).isoformat(timespec="seconds")


def local_today() -> dt.date:
    return dt.datetime.now(SHANGHAI).date()


def month_start_utc(now: dt.datetime | None = None) -> dt.datetime:
    """The first instant of the current Shanghai calendar month, in UTC."""
    local = (now or dt.datetime.now(dt.timezone.utc)).astimezone(SHANGHAI)
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0).astimezone(dt.timezone.utc)


def local_now() -> dt.datetime:
    return dt.datetime.now(SHANGHAI)
