"""HTTP views, one blueprint per area; views parse, call a service and dump."""


def register_blueprints(app, api) -> None:
    from api.views import (auth, bindings, bot, contributions, fsi, institution, ops, pages, persons, staff, usage,
                           wechat, window)
    app.register_blueprint(ops.bp)
    app.register_blueprint(wechat.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(fsi.bp)  # the HIS gateway (national interface), outside the OpenAPI document
    for module in (auth, persons, bindings, usage, staff, window, institution, bot, contributions):
        api.register_blueprint(module.blp)
