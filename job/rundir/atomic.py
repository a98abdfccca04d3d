"""Writing so that a reader, or a resume after a kill, never sees half a file; and naming the file a
full disk stopped."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """Name `path` on an OSError that does not name its file (a write() or fsync() on a full disk),
    so the one-line error can say what was being written."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None:
            exc.filename = str(path)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Temp file, fsync, rename: a reader, or a resume after a kill, never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    with writing(path):
        with tmp.open("wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
