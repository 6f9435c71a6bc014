"""Text clean-up shared by every engine (backend/engines/text.py), as pure units."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from backend.engines.text import StopMatcher, Utf8Decoder, WholeChars, join_surrogates

# --- stop sequences ----------------------------------------------------------


def _run_matcher(pieces: list[str], stops: tuple[str, ...]) -> tuple[list[str], bool]:
    matcher = StopMatcher(stops)
    out = [matcher.feed(piece) for piece in pieces]
    out.append(matcher.flush())
    return out, matcher.stopped


@pytest.mark.parametrize(
    ("pieces", "stops", "emitted", "stopped"),
    [
        # The stop arrives in three pieces; what precedes it is released as soon as it is safe.
        (
            ["Paris.", "\n", "\nUs", "er", ":", " next"],
            ("\nUser:",),
            ["Paris.", "", "\n", "", "", "", ""],
            True,
        ),
        # A false start is held, then released when it stops matching.
        (["a\nUs", "e it"], ("\nUser:",), ["a", "\nUse it", ""], False),
        # The earliest complete stop wins, even while a longer one is still held.
        (["xx ab", "cd"], ("abcx", "bc"), ["xx ", "a", ""], True),
        # A stop at the very start leaves nothing.
        (["EN", "D and more"], ("END",), ["", "", ""], True),
        # Held text that never completes a stop comes out at the end.
        (["done\nUse"], ("\nUser:",), ["done", "\nUse"], False),
        # Empty stop strings are ignored.
        (["text"], ("",), ["text", ""], False),
        # Multi-byte characters can be part of a stop.
        (["流式", "输", "出!"], ("输出",), ["流式", "", "", ""], True),
    ],
)
def test_stop_matcher_holds_back_split_stops(
    pieces: list[str], stops: tuple[str, ...], emitted: list[str], stopped: bool
) -> None:
    out, did_stop = _run_matcher(pieces, stops)
    assert out == emitted
    assert did_stop is stopped


def _splits(text: str) -> Iterator[list[str]]:
    """Every way of cutting ``text`` into consecutive pieces."""
    for mask in itertools.product((False, True), repeat=len(text) - 1):
        pieces, start = [], 0
        for index, cut in enumerate(mask, start=1):
            if cut:
                pieces.append(text[start:index])
                start = index
        pieces.append(text[start:])
        yield pieces


@pytest.mark.parametrize(
    ("text", "stops"),
    [
        ("ab\nUsx\nUser: q", ("\nUser:",)),
        ("aaab aab", ("aab",)),
        ("no stop here\nU", ("\nUser:", "zz")),
        ("héllo wörld", ("ö", "llo")),
    ],
)
def test_stop_matcher_same_result_for_every_split(text: str, stops: tuple[str, ...]) -> None:
    cuts = [i for i in (text.find(s) for s in stops) if i >= 0]
    expected = text[: min(cuts)] if cuts else text
    for pieces in _splits(text):
        out, stopped = _run_matcher(pieces, stops)
        assert "".join(out) == expected, pieces
        assert stopped is bool(cuts)


def test_stop_matcher_without_stops_is_inactive() -> None:
    assert not StopMatcher(("",)).active
    assert StopMatcher(("x",)).active


# --- whole characters --------------------------------------------------------


def test_utf8_decoder_never_splits_a_character() -> None:
    raw = "a😀é流".encode()
    for cut in range(1, len(raw)):
        decoder = Utf8Decoder()
        first = decoder.feed(raw[:cut])
        second = decoder.feed(raw[cut:])
        assert first + second + decoder.flush() == "a😀é流"
        assert "\ufffd" not in first + second
    broken = Utf8Decoder()
    assert broken.feed(b"ok\xf0\x9f") == "ok"
    assert broken.flush() == "\ufffd"


def test_whole_chars_joins_surrogate_halves_across_pieces() -> None:
    chars = WholeChars()
    assert chars.feed("a\ud83d") == "a"
    assert chars.feed("\ude00b") == "😀b"
    assert chars.feed("\udc00") == "\ufffd"  # a low half alone
    assert chars.feed("\ud83d") == ""
    assert chars.flush() == "\ufffd"  # a high half never completed
    assert join_surrogates("plain") == "plain"
