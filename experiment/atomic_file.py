"""Write a file so that a reader, or the next run after a crash, sees either the old content or the new, never half.

The text goes to a hidden temporary file beside the target (same directory: same file system), then
``os.replace`` swaps it in. A failed write removes the temporary file and raises the ``OSError`` for the caller to
word in one line.
"""

from __future__ import annotations

import os
from pathlib import Path


def write_text_atomic(path: Path, text: str) -> None:
    """Replace ``path``'s content with ``text`` atomically (the temporary file: ``.<name>.<pid>`` beside it)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise
