"""元 ↔ 分 at the edge of the HIS gateway, exactly: Decimal in, integer 分 inside, Decimal out; never a float."""
from __future__ import annotations

from decimal import Decimal, InvalidOperation

MAX_FEN = 10 ** 14  # num(16,2)


class AmountError(ValueError):
    """An amount that is not one: text, a bool, NaN, or more than two decimals."""


def to_fen(value, name: str) -> int:
    """A 元 amount as real HIS code sends it — a JSON number of any scale (parsed as Decimal), a string, or "" (or
    null) for zero — as integer 分. More than two significant decimals is an error, never rounded."""
    if value is None or value == "":
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, Decimal, str)):
        raise AmountError(f"{name} 须为金额（元）")
    try:
        amount = Decimal(value.strip()) if isinstance(value, str) else Decimal(value)
    except InvalidOperation:
        raise AmountError(f"{name} 须为金额（元），实为 {str(value)[:20]!r}") from None
    if not amount.is_finite():
        raise AmountError(f"{name} 须为金额（元）")
    fen = amount * 100
    if fen != fen.to_integral_value():
        raise AmountError(f"{name} 最多两位小数")
    if abs(fen) >= MAX_FEN:
        raise AmountError(f"{name} 金额过大")
    return int(fen)


def to_yuan(fen: int) -> Decimal:
    """Integer 分 as 元 with two decimals (4.52, 0.00, -25.10)."""
    return Decimal(fen).scaleb(-2).quantize(Decimal("0.01"))


def quantity(value, name: str) -> Decimal:
    """A quantity or a unit price (cnt 16,4; pric 16,6): kept as sent, for the record."""
    if value is None or value == "":
        return Decimal(0)
    if isinstance(value, bool) or not isinstance(value, (int, Decimal, str)):
        raise AmountError(f"{name} 须为数值")
    try:
        number = Decimal(value.strip()) if isinstance(value, str) else Decimal(value)
    except InvalidOperation:
        raise AmountError(f"{name} 须为数值") from None
    if not number.is_finite() or abs(number) >= MAX_FEN:
        raise AmountError(f"{name} 须为数值")
    return number
