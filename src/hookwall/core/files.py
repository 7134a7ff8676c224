"""Files only hookwall's user may read (the CA key, the delivery store), created that way.

Writing a file and chmodding it afterwards leaves a window in which it has the umask's mode
(0644 by default): on a shared volume another container can open it then, and keep the file
descriptor. So a private file is *created* with mode 0600 (``os.open``'s mode is applied
atomically with the creation), never widened later.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

PRIVATE = 0o600


def write_private(path: Path, data: bytes) -> None:
    """Replace ``path`` atomically with ``data``, readable and writable by its owner only.

    The bytes go to a new file in the same directory, created 0600, then renamed over
    ``path``: a reader sees the old file or the new one, never a half-written or wider one.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, PRIVATE)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), PRIVATE)  # exactly 0600, even under a stricter umask
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def create_private(path: Path) -> None:
    """Make sure ``path`` exists with mode 0600, creating it empty (contents kept if it
    exists; a wider mode left by an older hookwall is narrowed)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE)  # no O_TRUNC: the rows stay
    try:
        if os.fstat(fd).st_mode & 0o777 != PRIVATE:
            os.fchmod(fd, PRIVATE)
    finally:
        os.close(fd)


def narrow(path: Path) -> None:
    """Mode 0600 for a file that exists already (a no-op when it does not)."""
    with contextlib.suppress(FileNotFoundError):
        if path.stat().st_mode & 0o777 != PRIVATE:
            path.chmod(PRIVATE)
