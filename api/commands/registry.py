"""`flask --app api registry …`: load the registry files (docs/registry.md)."""
import sys
from pathlib import Path

import click
from flask.cli import AppGroup
from sqlalchemy.exc import OperationalError

from api.errors import database_unavailable
from api.services.registry import import_directory

cli = AppGroup("registry", help="registry commands")

MAX_ERRORS_SHOWN = 200  # per file; a broken export of 100,000 rows should not bury the summary


@cli.command("import", help="导入 DIR 中的 policies/*.toml、persons.csv、institutions.csv、kinship.csv、"
                             "account_credits.csv（可重复导入；首次导入后余额只随账本交易变化，登记余额不符时只列出对账）")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
def import_cmd(directory: Path) -> None:
    tty = sys.stderr.isatty()

    def progress(name: str, stage: str, done: int, total: int) -> None:
        line = f"{name}: {stage} {done}/{total}"
        if tty:
            click.echo("\r" + line + ("\n" if done >= total else ""), err=True, nl=False)
        else:
            click.echo(line, err=True)

    try:
        reports = import_directory(directory, progress)
    except OperationalError as exc:
        if not database_unavailable(exc):
            raise
        # another import (or a long writer) held the lock past the wait; nothing of the current file was written
        click.echo("数据库正忙（可能另一次导入正在进行），等待超时；已提交的文件保持不变，请稍后重新导入同一目录", err=True)
        sys.exit(1)
    if not reports:
        click.echo(f"{directory} 中没有可导入的文件（policies/、persons.csv、institutions.csv、kinship.csv、"
                   "account_credits.csv）", err=True)
        sys.exit(1)

    for report in reports:
        for error in report.errors[:MAX_ERRORS_SHOWN]:
            click.echo(error, err=True)
        if len(report.errors) > MAX_ERRORS_SHOWN:
            click.echo(f"{report.name}: 另有 {len(report.errors) - MAX_ERRORS_SHOWN} 处错误未列出", err=True)

    for report in reports:
        if report.reconciliation:
            # Not errors: the file loaded; these balances were left as the ledger has them.
            click.echo(f"对账：{report.name} 中 {len(report.reconciliation)} 人的登记余额与账本不符，未调整"
                       "（差额 = 登记 − 账本）：")
            for line in report.reconciliation[:MAX_ERRORS_SHOWN]:
                click.echo("  " + line.text())
            if len(report.reconciliation) > MAX_ERRORS_SHOWN:
                click.echo(f"  另有 {len(report.reconciliation) - MAX_ERRORS_SHOWN} 人未列出")
            if report.reconciliation_file is not None:
                click.echo(f"  对账明细已保存：{report.reconciliation_file}")

    click.echo("导入结果（新增 / 更新 / 未变）：")
    rejected = []
    for report in reports:
        counts = f"新增 {report.inserted}，更新 {report.updated}，未变 {report.unchanged}"
        if report.name == "policies/":
            bad = sorted({e.split(":")[0] for e in report.errors})
            note = f"；有错误未导入：{'、'.join(bad)}" if bad else ""
            click.echo(f"  {report.name}: {counts}{note}")
            rejected.extend(bad)
        elif report.ok:
            click.echo(f"  {report.name}: {counts}")
        else:
            click.echo(f"  {report.name}: 未导入——有 {len(report.errors)} 处错误，本文件未写入任何数据")
            rejected.append(report.name)
    if rejected:
        loaded = [r.name for r in reports if r.ok or r.loaded_files]
        click.echo(f"已导入：{'、'.join(loaded) or '无'}；未导入：{'、'.join(rejected)}", err=True)
        sys.exit(1)
    click.echo("导入完成。")
