"""Masking of ID numbers, phone numbers, card numbers and names for every response, log line and document."""
import re

_ID_RE = re.compile(r"(?<![0-9])([1-9][0-9]{5})[0-9]{8}([0-9]{3}[0-9Xx])(?![0-9])")
# the 15-digit ID numbers issued before 1999 (region, YYMMDD, sequence; no check digit) are still in old records
# standing alone, with a birth date's month and day, so that a receipt number's digits (GJ2026120201989…) are no ID
_OLD_ID_RE = re.compile(r"(?<![0-9A-Za-z])[1-9][0-9]{5}[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])[0-9]{3}"
                        r"(?![0-9A-Za-z])")
_PHONE_RE = re.compile(r"(?<![0-9])(1[3-9][0-9])[0-9]{4}([0-9]{4})(?![0-9])")
# 医保卡号 as the registry exports them: one or two letters, then 8–11 digits (G440000001); standing alone, so
# that longer identifiers (receipt numbers GJ20260101…, hex ids) are left as they are
_CARD_RE = re.compile(r"(?<![0-9A-Za-z])[A-Za-z]{1,2}[0-9]{8,11}(?![0-9A-Za-z])")


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


def mask_typed_username(username: str | None) -> str:
    """What was typed as a username in a failed login: a wrong one is often a password or a phone number, so
    only its first character is kept (and not its length)."""
    return f"{(username or '')[:1]}***"


def mask_text(text: str) -> str:
    """Masks any ID number (18 or 15 digits), card number or mobile number found in free text (log lines)."""
    text = _ID_RE.sub(lambda m: mask_id(m.group(0)), text)
    text = _OLD_ID_RE.sub(lambda m: mask_id(m.group(0)), text)
    text = _CARD_RE.sub(lambda m: mask_card(m.group(0)), text)
    return _PHONE_RE.sub(r"\1****\2", text)
