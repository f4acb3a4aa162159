"""Argument checks shared by the benches: bad input is one line naming the option and what it allows."""

from __future__ import annotations


def whole(error: type[Exception], prog: str, option: str, raw: str, lo: int, hi: int, extra: str = "") -> int:
    """``raw`` as a whole number in [lo, hi], else ``error`` with one line (``extra`` adds to what is allowed)."""
    try:
        value = int(raw)
    except ValueError:
        value = lo - 1
    if not lo <= value <= hi:
        raise error(f"{prog}: invalid {option} {raw!r}; allowed: a whole number in [{lo}, {hi}]{extra}")
    return value
