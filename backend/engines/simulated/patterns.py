"""A string that a regular expression matches, drawn from a seeded generator.

For the ``pattern`` of a JSON Schema string. The expression is parsed by
Python's own regular-expression parser and its tree walked: literals,
character sets and classes, alternation, groups and back-references,
repetition (a few repeats beyond the minimum). Anchors are satisfied by
construction; look-arounds and conditionals are not supported
(``PatternError``).
"""

from __future__ import annotations

import random
import re
import string
from re import _constants as sre
from re import _parser as sre_parse
from typing import Any

_EXTRA_REPEATS = 3  # beyond a repeat's minimum, when it allows more
_POOL = string.ascii_letters + string.digits + " -_.,:;!?@#/+=*()[]{}'\"" + "éü流"

_CATEGORIES: dict[Any, Any] = {
    sre.CATEGORY_DIGIT: str.isdigit,
    sre.CATEGORY_NOT_DIGIT: lambda ch: not ch.isdigit(),
    sre.CATEGORY_SPACE: str.isspace,
    sre.CATEGORY_NOT_SPACE: lambda ch: not ch.isspace(),
    sre.CATEGORY_WORD: lambda ch: ch.isalnum() or ch == "_",
    sre.CATEGORY_NOT_WORD: lambda ch: not (ch.isalnum() or ch == "_"),
}


class PatternError(ValueError):
    """The expression uses something this generator does not do."""


def string_matching(pattern: str, rng: random.Random) -> str:
    try:
        parsed = sre_parse.parse(pattern)
    except re.error as error:
        raise PatternError(f"not a regular expression: {error}") from None
    groups: dict[int, str] = {}
    text = _sequence(list(parsed), rng, groups)
    if re.search(pattern, text) is None:
        raise PatternError("no match was found")
    return text


def _sequence(items: list[tuple[Any, Any]], rng: random.Random, groups: dict[int, str]) -> str:
    return "".join(_item(op, argument, rng, groups) for op, argument in items)


def _item(op: Any, argument: Any, rng: random.Random, groups: dict[int, str]) -> str:
    if op is sre.LITERAL:
        return chr(argument)
    if op is sre.NOT_LITERAL:
        return _pick(rng, lambda ch: ord(ch) != argument, ())
    if op is sre.ANY:
        return rng.choice(string.ascii_letters)
    if op is sre.IN:
        return _in_set(argument, rng)
    if op is sre.AT:
        return ""
    if op is sre.BRANCH:
        return _sequence(list(rng.choice(argument[1])), rng, groups)
    if op is sre.SUBPATTERN:
        group, _add_flags, _del_flags, body = argument
        text = _sequence(list(body), rng, groups)
        if group is not None:
            groups[group] = text
        return text
    if op is sre.ATOMIC_GROUP:
        return _sequence(list(argument), rng, groups)
    if op in (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT):
        low, high, body = argument
        top = low + _EXTRA_REPEATS if high is sre.MAXREPEAT else min(high, low + _EXTRA_REPEATS)
        return "".join(_sequence(list(body), rng, groups) for _ in range(rng.randint(low, top)))
    if op is sre.GROUPREF:
        return groups.get(argument, "")
    raise PatternError(f"{str(op).lower()} is not supported")


def _in_set(items: list[tuple[Any, Any]], rng: random.Random) -> str:
    negate = bool(items) and items[0][0] is sre.NEGATE
    members = items[1:] if negate else items
    extra: list[str] = []
    for op, argument in members:
        if op is sre.LITERAL:
            extra.append(chr(argument))
        elif op is sre.RANGE:
            low, high = argument
            extra.extend((chr(low), chr(high), chr(rng.randint(low, high))))

    def inside(ch: str) -> bool:
        for op, argument in members:
            if op is sre.LITERAL and ord(ch) == argument:
                return True
            if op is sre.RANGE and argument[0] <= ord(ch) <= argument[1]:
                return True
            if op is sre.CATEGORY:
                test = _CATEGORIES.get(argument)
                if test is None:
                    raise PatternError(f"{str(argument).lower()} is not supported")
                if test(ch):
                    return True
        return False

    return _pick(rng, (lambda ch: not inside(ch)) if negate else inside, () if negate else extra)


def _pick(rng: random.Random, accept: Any, extra: tuple[str, ...] | list[str]) -> str:
    candidates: list[str] = sorted({ch for ch in (*_POOL, *extra) if accept(ch)})
    if not candidates:
        raise PatternError("a character set no character matches")
    return rng.choice(candidates)
