"""`flask --app api staff …`: create the staff users of the 医保大厅 and the review office."""
import sys

import click
from flask.cli import AppGroup

from api.services.logins import StaffError, check_new_staff, create_staff

cli = AppGroup("staff", help="staff commands")


def _read_password() -> str:
    """From the prompt (typed twice, hidden) at a terminal; else the first line of standard input (scripts)."""
    if sys.stdin.isatty():
        return click.prompt("密码", hide_input=True, confirmation_prompt="再次输入密码")
    line = sys.stdin.readline()
    return line.rstrip("\r\n")


@cli.command("create", help="新建工作人员账号：--role 可重复（clerk 窗口经办人、reviewer 审核员、admin 管理员）；"
                            "密码在终端提示输入，非终端时从标准输入读取第一行")
@click.argument("username")
@click.option("--role", "roles", multiple=True, required=True, metavar="ROLE",
              help="clerk | reviewer | admin (repeatable)")
@click.option("--region", "region_code", metavar="NN", default=None,
              help="省级区划代码（两位，如 44）：窗口经办人、审核员只办理该省参保人的业务；不指定则为全国")
def create_cmd(username: str, roles: tuple[str, ...], region_code: str | None) -> None:
    try:
        check_new_staff(username, list(roles), region_code)  # refuse before asking for a password
        staff = create_staff(username, _read_password(), list(roles), region_code)
    except StaffError as exc:
        click.echo(f"未创建：{exc}", err=True)
        sys.exit(1)
    scope = f"{staff.region_code} 省级区划" if staff.region_code else "全国"
    click.echo(f"已创建工作人员 {staff.username}，角色：{'、'.join(staff.roles)}，范围：{scope}")
