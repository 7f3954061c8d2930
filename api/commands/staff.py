"""`flask --app api staff …`: create the staff users of the 医保大厅 and the review office."""
import sys

import click
from flask.cli import AppGroup

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
def create_cmd(username: str, roles: tuple[str, ...]) -> None:
    from api.services.accounts import StaffError, check_new_staff, create_staff

    try:
        check_new_staff(username, list(roles))  # refuse before asking for a password
        staff = create_staff(username, _read_password(), list(roles))
    except StaffError as exc:
        click.echo(f"未创建：{exc}", err=True)
        sys.exit(1)
    click.echo(f"已创建工作人员 {staff.username}，角色：{'、'.join(staff.roles)}")
