"""Text clean-up every engine needs, in one place: whole UTF-8 characters and
stop sequences.

- ``Utf8Decoder``: model tokens are byte sequences; one emoji may arrive as
  four one-byte tokens. An incremental decoder holds back an incomplete
  sequence until the rest arrives, so no delta carries half a character.
- ``WholeChars``: the same rule for text that arrives as JSON strings (an
  upstream may spell one astral character as two ``\\uXXXX`` escapes and put
  them in two chunks).
- ``StopMatcher``: cuts text at the first stop sequence, even one that
  straddles several tokens, and never emits any part of it.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable

_SURROGATE = re.compile("[\ud800-\udfff]")


class Utf8Decoder:
    """Turns arbitrary byte pieces into whole characters."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, piece: bytes) -> str:
        return self._decoder.decode(piece, final=False)

    def flush(self) -> str:
        return self._decoder.decode(b"", final=True)


class WholeChars:
    """Keeps surrogate pairs together across pieces of decoded JSON text.

    A trailing high surrogate waits for the next piece; pairs are joined into
    one character; a surrogate that stays alone becomes U+FFFD (no UTF-8
    encoder accepts a lone surrogate).
    """

    def __init__(self) -> None:
        self._pending = ""

    def feed(self, text: str) -> str:
        text, self._pending = self._pending + text, ""
        if text and "\ud800" <= text[-1] <= "\udbff":
            text, self._pending = text[:-1], text[-1]
        return join_surrogates(text)

    def flush(self) -> str:
        text, self._pending = self._pending, ""
        return join_surrogates(text)


def join_surrogates(text: str) -> str:
    """Pair up surrogates into characters; a lone one becomes U+FFFD."""
    if _SURROGATE.search(text) is None:
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


class StopMatcher:
    """Cuts text at the first stop sequence, holding back what could be the start of one.

    A stop sequence may arrive split over several tokens ("\\nUs", "er:"), so
    any tail of the text that is a prefix of some stop sequence is held until
    later text settles it. The stop sequence itself is never emitted.
    """

    def __init__(self, stops: Iterable[str]) -> None:
        self._stops = tuple(dict.fromkeys(s for s in stops if s))
        self._pending = ""
        self.stopped = False
        self.matched: str | None = None  # the stop sequence that cut the text

    @property
    def active(self) -> bool:
        """False when there is nothing to match (the caller may skip ``feed``)."""
        return bool(self._stops)

    def feed(self, text: str) -> str:
        """Return the text that is now known not to belong to a stop sequence."""
        if self.stopped:
            return ""
        buffer = self._pending + text
        found = [(index, stop) for stop in self._stops if (index := buffer.find(stop)) >= 0]
        if found:
            cut, self.matched = min(found, key=lambda pair: pair[0])
            self.stopped = True
            self._pending = ""
            return buffer[:cut]
        hold = self._held_length(buffer)
        self._pending = buffer[len(buffer) - hold :]
        return buffer[: len(buffer) - hold]

    def flush(self) -> str:
        """At the end of generation: the held-back text, which no stop completed."""
        pending, self._pending = self._pending, ""
        return "" if self.stopped else pending

    def _held_length(self, buffer: str) -> int:
        longest = 0
        for stop in self._stops:
            for size in range(min(len(stop) - 1, len(buffer)), longest, -1):
                if buffer.endswith(stop[:size]):
                    longest = size
                    break
        return longest
