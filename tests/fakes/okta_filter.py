"""Okta's ``filter`` expressions as the fake Okta understands them: ``<attribute> <op> "<value>"``
terms joined by ``and`` / ``or`` (``and`` binds tighter), with parentheses; no ``not``.

Each attribute allows only the operators Okta documents for it (users: ``eq`` on status, id and
profile fields, ``gt ge lt le`` as well on ``lastUpdated``; groups: ``eq`` on id and type, comparisons
on ``lastUpdated`` and ``lastMembershipUpdated``). Dates compare as instants; everything else is
compared case-sensitively, as Okta does.
"""

import re
from collections.abc import Callable
from datetime import UTC, datetime

Getter = Callable[[str], object]  # attribute name -> value (dates as epoch seconds)
Predicate = Callable[[Getter], bool]

EQ = frozenset({"eq"})
COMPARE = frozenset({"eq", "gt", "ge", "lt", "le"})
USER_FIELDS = {
    "status": EQ,
    "id": EQ,
    "profile.login": EQ,
    "profile.email": EQ,
    "profile.firstName": EQ,
    "profile.lastName": EQ,
    "lastUpdated": COMPARE,
}
GROUP_FIELDS = {"id": EQ, "type": EQ, "lastUpdated": COMPARE, "lastMembershipUpdated": COMPARE}
DATE_FIELDS = frozenset({"lastUpdated", "lastMembershipUpdated"})
_TOKEN = re.compile(r'\s*(?:(?P<paren>[()])|"(?P<string>(?:[^"\\]|\\.)*)"|(?P<word>[A-Za-z][A-Za-z0-9_.]*))')
_OPS = {
    "eq": lambda a, b: a == b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
}


class FilterError(ValueError):
    pass


def filter_parse(text: str, fields: dict[str, frozenset[str]]) -> Predicate:
    tokens = _tokenize(text)
    predicate, position = _or(tokens, 0, fields)
    if position != len(tokens):
        raise FilterError(f"unexpected {tokens[position][1]!r}")
    return predicate


def okta_time_parse(value: str) -> float:
    """``2013-06-01T00:00:00.000Z`` (milliseconds optional) as epoch seconds."""
    try:
        moment = datetime.strptime(value.replace(".000Z", "Z"), "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        try:
            moment = datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ")
        except ValueError as error:
            raise FilterError(f"not a date: {value!r}") from error
    return moment.replace(tzinfo=UTC).timestamp()


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    while position < len(text):
        if not text[position:].strip():
            break
        match = _TOKEN.match(text, position)
        if match is None:
            raise FilterError(f"cannot read the filter at {position}")
        kind = match.lastgroup or ""
        value = match.group(kind)
        tokens.append((kind, value.replace('\\"', '"') if kind == "string" else value))
        position = match.end()
    return tokens


def _or(tokens, position, fields):
    left, position = _and(tokens, position, fields)
    while position < len(tokens) and tokens[position] == ("word", "or"):
        right, position = _and(tokens, position + 1, fields)
        left = _either(left, right)
    return left, position


def _and(tokens, position, fields):
    left, position = _term(tokens, position, fields)
    while position < len(tokens) and tokens[position] == ("word", "and"):
        right, position = _term(tokens, position + 1, fields)
        left = _both(left, right)
    return left, position


def _term(tokens, position, fields):
    if position < len(tokens) and tokens[position] == ("paren", "("):
        inner, position = _or(tokens, position + 1, fields)
        if position >= len(tokens) or tokens[position] != ("paren", ")"):
            raise FilterError("a parenthesis is not closed")
        return inner, position + 1
    if position + 3 > len(tokens):
        raise FilterError("a term is cut short")
    (kind_a, attribute), (kind_o, op), (kind_v, value) = tokens[position : position + 3]
    if kind_a != "word" or attribute not in fields:
        raise FilterError(f"cannot filter on {attribute!r}")
    if kind_o != "word" or op not in fields[attribute]:
        raise FilterError(f"{attribute} does not support {op!r}")
    if kind_v != "string":
        raise FilterError(f"{attribute} {op} needs a quoted value")
    operand: object = okta_time_parse(value) if attribute in DATE_FIELDS else value
    compare = _OPS[op]
    return (lambda get: (found := get(attribute)) is not None and compare(found, operand)), position + 3


def _either(left: Predicate, right: Predicate) -> Predicate:
    return lambda get: left(get) or right(get)


def _both(left: Predicate, right: Predicate) -> Predicate:
    return lambda get: left(get) and right(get)
