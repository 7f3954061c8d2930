"""SMS (短信), simulated: the text that would go to the person's phone; the record keeps the number masked."""
from api.masking import mask_phone
from api.notify import _simulated

SIGNATURE = "【医保服务】"


def send(notification, person, _user_id=None, dedup_key: str | None = None):
    _simulated.fail_if_asked("sms")
    payload = {"text": SIGNATURE + notification.body}
    return _simulated.record(notification, "sms", mask_phone(person.phone), payload, dedup_key)
