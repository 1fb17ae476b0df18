"""Incremental detokenization (TGI's prefix/read offsets): emit only whole characters.

A multi-byte character (emoji, CJK) can span tokens; decoding a partial byte sequence yields U+FFFD.
The new text is held back while it ends in U+FFFD, so streamed pieces never split a character and,
joined, equal the text of the whole sequence.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

Decode = Callable[[Sequence[int]], str]
_REPLACEMENT = "\ufffd"


class IncrementalDetokenizer:
    def __init__(self, decode: Decode, prompt_tail: Sequence[int] = ()) -> None:
        # a few prompt tokens give the first output token its context (leading-space rules)
        self._decode = decode
        self.ids: list[int] = list(prompt_tail)
        self._prefix = 0
        self._read = len(self.ids)

    def add(self, token: int) -> str:
        """Append one token; return the newly completed text (possibly "")."""
        self.ids.append(token)
        return self._advance(final=False)

    def flush(self) -> str:
        """At the end of the sequence: whatever is left, even an incomplete character."""
        return self._advance(final=True)

    def _advance(self, final: bool) -> str:
        prefix_text = self._decode(self.ids[self._prefix : self._read])
        new_text = self._decode(self.ids[self._prefix :])
        if len(new_text) <= len(prefix_text) or (new_text.endswith(_REPLACEMENT) and not final):
            return ""
        delta = new_text[len(prefix_text) :]
        self._prefix, self._read = self._read, len(self.ids)
        return delta
