"""`flask --app api registry …`"""
from flask.cli import AppGroup

cli = AppGroup("registry", help="registry commands")
