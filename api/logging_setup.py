"""Structured (JSON) log lines with ID, card and phone numbers masked wherever they appear."""
import json
import logging
import sys

from api.masking import mask_text


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"at": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"), "level": record.levelname,
                 "logger": record.name, "msg": record.getMessage()}
        for key in ("request_id", "path", "method", "status", "duration_ms", "job", "actor"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        # each text before JSON escapes it (a number after a "\n" would no longer stand alone), then the line
        entry = {k: mask_text(v) if isinstance(v, str) else v for k, v in entry.items()}
        return mask_text(json.dumps(entry, ensure_ascii=False))


def configure(level: str = "INFO") -> None:
    root = logging.getLogger()
    if any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("alembic", "rq.worker", "rq.scheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
