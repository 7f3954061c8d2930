"""What browsers need around the API: the CORS allow-list and Swagger UI's files (pages: api/views/pages.py)."""
from flask import Blueprint, Flask, abort, request, send_from_directory

DOCS_ASSETS = "/api/docs-assets/"  # OPENAPI_SWAGGER_UI_URL: Swagger UI's JS and CSS, from swagger-ui-bundle
ALLOWED_METHODS = "GET, POST, PATCH, OPTIONS"
ALLOWED_HEADERS = "Authorization, Content-Type, Idempotency-Key, X-Institution-Key"
EXPOSED_HEADERS = "Retry-After, Idempotency-Replayed"
PREFLIGHT_MAX_AGE = "600"


def cors_origins(value: str | None) -> frozenset[str]:
    """CORS_ORIGINS: comma-separated origins (scheme://host[:port]); none by default, so no CORS headers at all."""
    return frozenset(o.strip().rstrip("/") for o in (value or "").split(",") if o.strip())


def init_app(app: Flask) -> None:
    origins = app.config.get("CORS_ORIGINS")
    app.config["CORS_ORIGINS"] = cors_origins(origins if isinstance(origins, str) or origins is None
                                              else ",".join(origins))

    @app.before_request
    def _preflight():
        # a CORS preflight is answered here, before any view (they would answer 405 or ask for a token)
        if request.method == "OPTIONS" and request.headers.get("Access-Control-Request-Method") \
                and request.headers.get("Origin") in app.config["CORS_ORIGINS"]:
            response = app.make_response(("", 204))
            response.headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
            response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
            response.headers["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE
            return response
        return None

    @app.after_request
    def _cors_headers(response):
        if not app.config["CORS_ORIGINS"]:
            return response
        response.vary.add("Origin")  # the answer depends on Origin wherever CORS is on: caches must keep them apart
        origin = request.headers.get("Origin")
        if origin in app.config["CORS_ORIGINS"]:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
        return response

    app.register_blueprint(_pages)


_pages = Blueprint("docs_assets", __name__)


@_pages.get(DOCS_ASSETS + "<path:filename>")
def docs_asset(filename: str):
    from swagger_ui_bundle import swagger_ui_path
    if filename.endswith((".html", ".j2")):  # only the JS, CSS and icons; the page is flask-smorest's
        abort(404)
    return send_from_directory(swagger_ui_path, filename, max_age=86400)
