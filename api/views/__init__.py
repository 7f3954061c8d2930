"""HTTP views, one blueprint per area; views parse, call a service and dump."""


def register_blueprints(app, api) -> None:
    from api.views import ops
    app.register_blueprint(ops.bp)
