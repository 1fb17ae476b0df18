"""Incremental detokenization never splits a UTF-8 character; pieces join to the full text."""

from app.engine.detokenizer import IncrementalDetokenizer

# a toy byte-level vocabulary: token i is one byte; decode like a BPE byte decoder (U+FFFD on broken bytes)
TEXT = "héllo 👋 世界!"
BYTES = list(TEXT.encode("utf-8"))


def decode(ids):
    return bytes(ids).decode("utf-8", errors="replace")


def test_pieces_are_whole_characters_and_join_to_the_text():
    detok = IncrementalDetokenizer(decode)
    pieces = [detok.add(b) for b in BYTES] + [detok.flush()]
    assert "".join(pieces) == TEXT
    assert all("\ufffd" not in p for p in pieces)
    assert "👋" in pieces  # the 4-byte emoji comes out in one piece, after its last byte


def test_flush_emits_an_incomplete_tail():
    detok = IncrementalDetokenizer(decode)
    out = "".join(detok.add(b) for b in "a€".encode()[:-1])
    assert out == "a"
    assert detok.flush() == "\ufffd"


def test_prompt_tail_gives_context_but_is_not_emitted():
    detok = IncrementalDetokenizer(decode, prompt_tail=list(b"prompt "))
    assert detok.add(ord("x")) == "x"
