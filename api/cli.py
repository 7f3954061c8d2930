"""Registers the operator commands of api/commands/ on the app."""


def register_commands(app) -> None:
    from api.commands import bot, ledger, registry, staff, worker
    for module in (registry, staff, ledger, worker, bot):
        app.cli.add_command(module.cli)
    app.cli.add_command(worker.clock)
