"""Text that leaves the process or reaches the wire: what would split or disguise a line."""

from __future__ import annotations


def is_control_character(character: str) -> bool:
    """C0, DEL and C1 controls, format characters (bidi overrides, zero width), the Unicode
    line and paragraph separators: whatever can split or disguise a line; and the stand-ins
    for bytes that were not UTF-8 (surrogates), which no output or wire can carry."""
    code = ord(character)
    if code < 0x80:  # ASCII, nearly every value: no need for the Unicode database
        return code < 0x20 or code == 0x7F
    import unicodedata

    return unicodedata.category(character) in ("Cc", "Cf", "Zl", "Zp", "Cs")


def escaped(character: str) -> str:
    return repr(character)[1:-1]


def one_line(text: str) -> str:
    """The text with its control characters escaped (\\r\\n), so it stays on one line."""
    if text.isascii() and text.isprintable():  # nearly every line: no character to look at
        return text
    return "".join(escaped(c) if is_control_character(c) else c for c in text)
