"""Token ids to their bytes, for any length of piece."""

from __future__ import annotations

import ctypes
from typing import Any


class TokenPieces:
    """Token id → bytes, with a buffer that grows as needed (one per thread).

    ``Llama.detokenize`` uses a fixed 32-byte buffer and silently drops longer
    pieces (Gemma has hundreds, e.g. Bengali words), so this sizes its own.
    """

    def __init__(self, llama_cpp: Any, vocab: Any) -> None:
        self._llama_cpp = llama_cpp
        self._vocab = vocab
        self._buffer = ctypes.create_string_buffer(64)

    def __call__(self, token: int) -> bytes:
        size = self._llama_cpp.llama_token_to_piece(
            self._vocab, token, self._buffer, len(self._buffer), 0, False
        )
        if size < 0:  # too small: the negated size is what it needs
            self._buffer = ctypes.create_string_buffer(-size)
            size = self._llama_cpp.llama_token_to_piece(
                self._vocab, token, self._buffer, len(self._buffer), 0, False
            )
        return self._buffer.raw[:size]
