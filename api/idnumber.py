"""居民身份证号码 (GB 11643-1999) validation: checksum and birth date through python-stdnum, not county history."""
import datetime as dt

from stdnum import exceptions
from stdnum.cn import ric


class InvalidIdNumber(ValueError):
    pass


def normalize(value: str) -> str:
    """Returns the canonical 18-character number or raises InvalidIdNumber.

    `ric.validate` would also insist that the county code existed in the birth year; numbers issued from 1984
    carry the code of the place of registration then, so older people's genuine numbers fail it. We check
    the format, the checksum and the birth date only.
    """
    number = ric.compact(value or "")
    if len(number) != 18 or not number[:17].isdigit() or number[0] == "0":
        raise InvalidIdNumber("format")
    try:
        birth = ric.get_birth_date(number)
    except exceptions.ValidationError:
        raise InvalidIdNumber("birth date") from None
    if birth > dt.date.today() or birth.year < 1890:
        raise InvalidIdNumber("birth date")
    if number[-1] != ric.calc_check_digit(number):
        raise InvalidIdNumber("checksum")
    return number


def is_valid(value: str) -> bool:
    try:
        normalize(value)
        return True
    except InvalidIdNumber:
        return False


def birth_date(number: str) -> dt.date:
    return ric.get_birth_date(number)


def is_male(number: str) -> bool:
    """The 17th digit is odd for men and even for women."""
    return int(number[16]) % 2 == 1
