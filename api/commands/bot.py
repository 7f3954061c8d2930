"""`flask --app api bot chat --as ID_NUMBER`: the chat bot in a terminal, as that person, for trying it by hand."""
import sys

import click
from flask.cli import AppGroup

from api import idnumber
from api.masking import mask_id, mask_text
from api.services.people import person_by_id_number
from bot import channels
from bot.conversation import handle

cli = AppGroup("bot", help="智能客服")
_QUIT = {"退出对话", "exit", "quit", ":q"}


def _show(turn) -> None:
    for reply in turn.replies:
        click.echo(mask_text(reply.text))
    options = [o for r in turn.replies for o in r.options]
    if options:
        click.echo("  " + "  ".join(f"[{n}] {o.label}" for n, o in enumerate(options, 1)))
    click.echo("")


@cli.command("chat", help="以某位参保人的身份在终端里和智能客服对话；输入数字选择选项，输入“退出对话”或 Ctrl-D 结束")
@click.option("--as", "id_number", required=True, metavar="ID_NUMBER", help="参保人的身份证号码")
def chat_cmd(id_number: str) -> None:
    try:
        person = person_by_id_number(idnumber.normalize(id_number))
    except idnumber.InvalidIdNumber:
        person = None
    if person is None:
        click.echo(f"未找到参保人：{mask_id(id_number)}", err=True)
        sys.exit(1)
    click.echo(f"以 {person.name[0]}**（{mask_id(person.id_number)}）的身份对话；输入“退出对话”结束。\n")
    _show(handle(person, channels.TERMINAL, text="菜单"))
    stdin = click.get_text_stream("stdin")
    while True:
        if stdin.isatty():
            click.echo("> ", nl=False)
        line = stdin.readline()
        if not line or line.strip() in _QUIT:
            break
        if not stdin.isatty():
            click.echo(f"> {mask_text(line.strip())}")
        _show(handle(person, channels.TERMINAL, text=line.strip()[:500]))
