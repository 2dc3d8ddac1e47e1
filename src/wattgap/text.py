"""Foreign text (run names, model names, paths, error messages from user code) made visible: every
character that is not printable (control characters, escape sequences, bidirectional overrides such as
U+202E, NUL) becomes an unambiguous escape, ``\\x1b``, ``\\u202e`` or ``\\U000e0001``, so that it is read,
never executed or reordered, by a terminal, a browser or a Markdown viewer. The one place where the
terminal, the report's HTML and Markdown, and the CSV export escape it."""

from __future__ import annotations


def _escape(character: str) -> str:
    code = ord(character)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def visible(value: object, keep: str = "") -> str:
    """``str(value)`` with every non-printable character escaped but those in ``keep`` (say "\\n\\t")."""
    return "".join(c if c.isprintable() or c in keep else _escape(c) for c in str(value))
