"""`flask --app api staff …`"""
from flask.cli import AppGroup

cli = AppGroup("staff", help="staff commands")
