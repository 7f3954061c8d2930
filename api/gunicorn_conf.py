"""gunicorn settings for the web process (Procfile `web`)."""
import os

bind = f"0.0.0.0:{os.environ.get('PORT', '5000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "3"))
threads = int(os.environ.get("WEB_THREADS", "4"))
timeout = 30
accesslog = None  # the app logs requests itself, with identifiers masked
