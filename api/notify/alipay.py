"""Alipay mini-program message (小程序消息), simulated: what would go to the person's Alipay user id."""
from sqlalchemy import select

from api.extensions import db
from api.models import ChannelAccount
from api.notify import _simulated


def send(notification, person):
    user_id = db.session.scalar(select(ChannelAccount.openid).where(
        ChannelAccount.person_id == person.id, ChannelAccount.channel == "alipay"))
    _simulated.fail_if_asked("alipay")
    payload = {"to_user_id": user_id, "title": notification.title, "content": notification.body}
    return _simulated.record(notification, "alipay", user_id or "", payload)
