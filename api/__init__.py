"""The 家庭共济 web service: `create_app` builds the Flask app; `flask --app api ...` finds it here."""
import logging
import time

from flask import Flask, g, request

from api import settings


def create_app(test_config: dict | None = None) -> Flask:
    app = Flask(__name__, instance_path=str(settings.instance_path()))
    app.config.update(
        SECRET_KEY=settings.secret_key(),
        SQLALCHEMY_DATABASE_URI=settings.database_url(),
        SQLALCHEMY_ENGINE_OPTIONS={"pool_pre_ping": True},
        REDIS_URL=settings.redis_url(),
        UPLOAD_DIR=str(settings.upload_dir()),
        MAX_CONTENT_LENGTH=6 * 1024 * 1024,
        TOKEN_TTL_SECONDS=settings.env_int("TOKEN_TTL_SECONDS", 2 * 3600),
        APP_ENV=settings.env_str("APP_ENV", "development"),
        # simulated (make run, tests, demos) or real channel adapters (api/channels/, api/notify/)
        CHANNEL_ADAPTERS=settings.env_str("CHANNEL_ADAPTERS", "simulated"),
        WECHAT_TOKEN=settings.env_str("WECHAT_TOKEN", settings.DEV_WECHAT_TOKEN),
        WECHAT_APPID=settings.env_str("WECHAT_APPID"),
        WECHAT_APP_SECRET=settings.env_str("WECHAT_APP_SECRET"),
        WECHAT_TEMPLATE_ID=settings.env_str("WECHAT_TEMPLATE_ID"),
        WECHAT_API_BASE=settings.env_str("WECHAT_API_BASE", "https://api.weixin.qq.com"),
        WECHAT_TIMEOUT_SECONDS=settings.env_float("WECHAT_TIMEOUT_SECONDS", 3.0),
        # the official account's 安全模式 (AES); without it only plaintext messages are accepted
        WECHAT_AES_KEY=settings.env_str("WECHAT_AES_KEY"),
        # the simulated channel adapters fail on request (tests/test_faults.py); never on in production
        SIMULATED_CHANNEL_FAULTS=settings.env_bool("SIMULATED_CHANNEL_FAULTS"),
        API_TITLE="职工医保个人账户家庭共济 API",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api",
        OPENAPI_JSON_PATH="v1/openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        OPENAPI_SWAGGER_UI_URL="/api/docs-assets/",  # api/web.py serves them: the docs work offline
        CORS_ORIGINS=settings.env_str("CORS_ORIGINS"),  # comma-separated; none: no CORS headers (api/web.py)
        JSON_AS_ASCII=False,
    )
    if test_config:
        app.config.update(test_config)
    settings.check_settings(app.config)  # before anything connects: a production start with demo settings fails here
    app.json.ensure_ascii = False
    # Behind N reverse proxies (nginx, a load balancer), the client's address is in X-Forwarded-For: trust exactly
    # that many hops, so that the per-client login limits see the client, and nobody can forge the header past them.
    if proxies := int(app.config.get("TRUSTED_PROXIES", settings.env_int("TRUSTED_PROXIES", 0))):
        from werkzeug.middleware.proxy_fix import ProxyFix
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)

    from api import logging_setup
    logging_setup.configure(settings.env_str("LOG_LEVEL", "INFO"))

    from api.extensions import configure_engine, db, migrate, smorest
    from api import models  # noqa: F401  (registers the tables)
    db.init_app(app)
    migrate.init_app(app, db, directory=str(settings.ROOT / "migrations"))
    with app.app_context():
        configure_engine(db.engine)
    from api.schemas import ErrorBody
    smorest.ERROR_SCHEMA = ErrorBody  # document our error body, not flask-smorest's
    smorest.init_app(app)

    from workers.queues import RQJobQueue
    app.extensions["job_queue"] = RQJobQueue()  # what services enqueue through (api.jobs)

    from api.errors import register_error_handlers
    register_error_handlers(app)

    @app.before_request
    def _forget_previous_caller():
        # g lives in the app context, which an outer context (tests, CLI) may share between requests
        for key in ("person", "channel", "staff", "institution"):
            g.pop(key, None)
        g.started = time.monotonic()

    @app.after_request
    def _log_request(response):
        # one structured line per request; the formatter masks ID and phone numbers (paths may hold them)
        started = g.pop("started", None)
        if started is not None and request.path not in ("/healthz", "/readyz"):
            logging.getLogger("api.request").info(
                "%s %s %s", request.method, request.path, response.status_code,
                extra={"method": request.method, "path": request.path, "status": response.status_code,
                       "duration_ms": round((time.monotonic() - started) * 1000, 1)})
        return response

    from api.views import register_blueprints
    register_blueprints(app, smorest)

    from api import web
    web.init_app(app)  # CORS, Swagger UI's files

    from api.cli import register_commands
    register_commands(app)
    return app
