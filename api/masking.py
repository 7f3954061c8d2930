"""Masking of ID numbers, phone numbers, card numbers and names for every response, log line and document."""
import re

_ID_RE = re.compile(r"(?<![0-9])([1-9][0-9]{5})[0-9]{8}([0-9]{3}[0-9Xx])(?![0-9])")
_PHONE_RE = re.compile(r"(?<![0-9])(1[3-9][0-9])[0-9]{4}([0-9]{4})(?![0-9])")


def mask_id(id_number: str | None) -> str | None:
    if not id_number:
        return id_number
    if len(id_number) < 10:
        return "*" * len(id_number)
    return id_number[:6] + "*" * (len(id_number) - 10) + id_number[-4:]


def mask_phone(phone: str | None) -> str | None:
    if not phone:
        return phone
    if len(phone) < 7:
        return "*" * len(phone)
    return phone[:3] + "*" * (len(phone) - 7) + phone[-4:]


def mask_card(card: str | None) -> str | None:
    if not card:
        return card
    return card[:2] + "*" * max(len(card) - 6, 0) + card[-4:]


def mask_name(name: str | None) -> str | None:
    if not name:
        return name
    return name[0] + "*" * max(len(name) - 1, 1)


def mask_text(text: str) -> str:
    """Masks any ID number or mobile number found in free text (log lines)."""
    return _PHONE_RE.sub(r"\1****\2", _ID_RE.sub(lambda m: mask_id(m.group(0)), text))
