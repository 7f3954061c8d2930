"""HTTP views, one blueprint per area; views parse, call a service and dump."""


def register_blueprints(app, api) -> None:
    from api.views import auth, bindings, ops, persons, staff
    app.register_blueprint(ops.bp)
    for module in (auth, persons, bindings, staff):
        api.register_blueprint(module.blp)
