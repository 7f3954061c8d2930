"""Operator commands: `flask --app api registry import`, `staff create`, `ledger check`, `worker`."""
import click
from flask.cli import AppGroup


def register_commands(app) -> None:
    pass
