"""WeChat subscribe message (订阅消息), simulated: the template message that would go to the person's openid."""
from sqlalchemy import select

from api.extensions import db
from api.models import ChannelAccount
from api.notify import _simulated

TEMPLATE_ID = "FAMILY_MUTUAL_AID_STATUS"


def send(notification, person):
    openid = db.session.scalar(select(ChannelAccount.openid).where(
        ChannelAccount.person_id == person.id, ChannelAccount.channel == "wechat"))
    _simulated.fail_if_asked("wechat")
    payload = {"touser": openid, "template_id": TEMPLATE_ID,
               "data": {"thing1": {"value": notification.title}, "thing2": {"value": notification.body[:20]}}}
    return _simulated.record(notification, "wechat", openid or "", payload)
