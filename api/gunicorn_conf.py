"""gunicorn settings for the web process (Procfile `web`)."""
import os

bind = f"0.0.0.0:{os.environ.get('PORT', '5000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "3"))
threads = int(os.environ.get("WEB_THREADS", "4"))
timeout = 30
accesslog = None  # the app logs requests itself, with identifiers masked
# The national interface's gateway headers are `_api_access_key`, `_api_signature` …: names with underscores, which
# gunicorn drops by default (they map to the same environ key as their dashed twins). They are needed, and they are
# checked by their HMAC; the cost is that `X_Forwarded_For` reaches the app as X-Forwarded-For would, so behind a
# proxy (TRUSTED_PROXIES) the proxy must strip underscored forwarding headers (nginx drops every underscored header
# unless `underscores_in_headers on`, which the HIS gateway needs there too).
header_map = os.environ.get("GUNICORN_HEADER_MAP", "dangerous")
