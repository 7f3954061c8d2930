"""HTTP views, one blueprint per area; views parse, call a service and dump."""


def register_blueprints(app, api) -> None:
    from api.views import auth, bindings, institution, ops, persons, staff, usage
    app.register_blueprint(ops.bp)
    for module in (auth, persons, bindings, usage, staff, institution):
        api.register_blueprint(module.blp)
