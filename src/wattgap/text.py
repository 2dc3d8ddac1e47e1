"""Text for people, in one place below every layer: numbers in fixed-point form with significant digits
(never ``1e+03``), and foreign text (run names, model names, paths, error messages from user code) made
visible: every character that is not printable (control characters, escape sequences, bidirectional
overrides such as U+202E, NUL) becomes an unambiguous escape, ``\\x1b``, ``\\u202e`` or ``\\U000e0001``,
so that it is read, never executed or reordered, by a terminal, a browser or a Markdown viewer: the
terminal, the report's HTML and Markdown, and the CSV export all escape it here."""

from __future__ import annotations

import math


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


def number(value: float, digits: int = 3) -> str:
    """``value`` to ``digits`` significant digits, in fixed-point notation (integers keep every digit)."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    magnitude = math.floor(math.log10(abs(value)))
    decimals = max(0, digits - 1 - magnitude)
    rounded = round(value, decimals)
    if rounded != 0 and math.floor(math.log10(abs(rounded))) > magnitude:  # 9.996 -> 10.0: one decimal less
        decimals = max(0, decimals - 1)
    return f"{rounded:.{decimals}f}"


def age(seconds: float) -> str:
    """How old a measurement is, for a sentence: "0.5 h", or "3 days" past two days."""
    hours = seconds / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.0f} days"
