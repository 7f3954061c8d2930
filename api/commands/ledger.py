"""`flask --app api ledger …`"""
from flask.cli import AppGroup

cli = AppGroup("ledger", help="ledger commands")
