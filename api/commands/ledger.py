"""`flask --app api ledger …`: operator checks of the double-entry ledger (F8)."""
import sys
from sqlalchemy import func, select

from api import ledger
from api.extensions import db
from api.models import LedgerAccount, LedgerTransaction, Posting

import click
from flask.cli import AppGroup

cli = AppGroup("ledger", help="ledger commands")


@cli.command("check", help="核对账目：每笔凭证的分录合计为零，每个账户余额等于其分录之和，个人账户不为负；"
                           "有不符时逐条列出并以非零状态退出")
def check_cmd() -> None:
    if db.engine.dialect.name == "postgresql" and not db.session().in_transaction():
        # one snapshot for all the queries, so that money moving meanwhile cannot look like a mismatch
        db.session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    try:
        problems = ledger.check()
        counts = [db.session.scalar(select(func.count()).select_from(model))
                  for model in (LedgerTransaction, Posting, LedgerAccount)]
    finally:
        db.session.rollback()  # a read-only look: end the transaction rather than hold a snapshot
    if problems:
        click.echo(f"账目核对未通过：发现 {len(problems)} 处不符", err=True)
        for problem in problems:
            click.echo(f"  {problem}", err=True)
        sys.exit(1)
    transactions, postings, accounts = counts
    click.echo(f"账目核对通过：{transactions} 笔凭证，{postings} 条分录，{accounts} 个账户")
