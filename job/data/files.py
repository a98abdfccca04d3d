"""How the readers touch the filesystem: open regular files only, read with a bound, and hash.

A FIFO or a device passed as data would block or never end, so nothing here opens one; and a
compressed file is read to at most what its header declares, plus one byte to notice a longer one.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import BinaryIO

from job.data.dataset import DataError

CHUNK = 1 << 20  # bounded reads grow in 1 MiB steps, so a lying header costs nothing up front

SPECIAL_KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFDIR: "a directory",
}


DATA_FIX = "pass a regular file (or a folder of idx files)"


def _not_regular(path: Path, mode: int, fix: str = DATA_FIX) -> DataError:
    kind = SPECIAL_KINDS.get(stat.S_IFMT(mode), "not a regular file")
    return DataError(f"{path}: {kind}, not a regular file; {fix}")


def require_regular(path: Path) -> None:
    """Refuse, by name, anything that is not a regular file (after following symlinks)."""
    mode = path.stat().st_mode
    if not stat.S_ISREG(mode):
        raise _not_regular(path, mode)


def open_regular(path: Path, fix: str = DATA_FIX) -> BinaryIO:
    """Open for reading without blocking on a FIFO, then refuse anything but a regular file (`fix` ends
    the one-line refusal)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise _not_regular(path, mode, fix)
    return os.fdopen(fd, "rb")


def read_bounded(fh: BinaryIO, limit: int) -> bytearray:
    """Read at most `limit` bytes, in chunks: a short file returns fewer, a bomb stops at the limit."""
    data = bytearray()
    while len(data) < limit:
        chunk = fh.read(min(CHUNK, limit - len(data)))
        if not chunk:
            break
        data += chunk
    return data


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open_regular(path) as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_dir(path: Path) -> str:
    """Hash of every regular file in the folder, by name: the same folder gives the same hash."""
    digest = hashlib.sha256()
    for f in sorted(p for p in path.iterdir() if p.is_file()):
        digest.update(f.name.encode() + b"\0" + sha256_file(f).encode())
    return digest.hexdigest()


def head(path: Path, size: int) -> bytes:
    with open_regular(path) as fh:
        return fh.read(size)


def looks_binary(path: Path) -> bool:
    start = head(path, 8192)
    if b"\0" in start:
        return True
    try:
        start.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start < len(start) - 4  # a multi-byte character cut at the boundary is fine
    return False


def looks_like_pickle(path: Path) -> bool:
    start = head(path, 2)
    return len(start) == 2 and start[0] == 0x80 and 2 <= start[1] <= 5


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:160]
