"""HTTP views, one blueprint per area; views parse, call a service and dump."""


def register_blueprints(app, api) -> None:
    from api.views import auth, bindings, bot, institution, ops, persons, staff, usage, wechat
    app.register_blueprint(ops.bp)
    app.register_blueprint(wechat.bp)
    from api.views import fsi  # the HIS gateway (national interface), outside the OpenAPI document
    app.register_blueprint(fsi.bp)
    for module in (auth, persons, bindings, usage, staff, institution, bot):
        api.register_blueprint(module.blp)
