"""Writing files atomically: a reader (or a crash) sees the old file or the new one, never half of one.

    write_atomically(path, lambda file: figure.savefig(file, format="png"))

Checkpoints (`dp.tools.checkpoint`), figures (`dp.tools.plots`), drawings (`dp.tools.draw`)
and the tables of `dp paper` are all written this way.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO


def write_atomically(path: str | os.PathLike[str], write: Callable[[IO[bytes]], object]) -> Path:
    """Call ``write`` on a new temporary file in ``path``'s folder (so that the rename
    stays on one file system, where it is atomic), flush it to disk, then rename it over
    ``path``. An existing file at ``path`` keeps its permissions; a new one gets the usual
    ones (0o666 minus the umask). Returns ``path`` as a `Path`.

    On any error or interrupt (``KeyboardInterrupt`` included) an existing file at ``path``
    is left untouched and no temporary file remains; an ``OSError`` names ``path``, not
    the temporary file. The folder must exist (``FileNotFoundError`` otherwise).
    """
    path = Path(path)
    mode = _mode_for(path)
    try:
        file = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False)
    except OSError as error:
        raise _about(path, error) from error
    try:
        with file:
            write(file)
            file.flush()
            os.fsync(file.fileno())  # the data is on disk before the name points at it
        os.chmod(file.name, mode)
        os.replace(file.name, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.unlink(file.name)
        if isinstance(error, OSError):
            raise _about(path, error) from error
        raise
    _sync_directory(path.parent)
    return path


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` in UTF-8, atomically (`write_atomically`). Returns ``path``."""
    data = text.encode("utf-8")
    return write_atomically(path, lambda file: file.write(data))


def _about(path: Path, error: OSError) -> OSError:
    """``error`` (same class and errno) told about the file the user named, not the
    temporary file it was being written to."""
    message = f"cannot write {path}: {error.strerror or error}"
    return type(error)(message) if error.errno is None else type(error)(error.errno, message)


def _mode_for(path: Path) -> int:
    """The permissions the file should end with: an existing target's, else the usual
    ones for a new file (temporary files are created readable by their owner only)."""
    with contextlib.suppress(OSError):
        return path.stat().st_mode & 0o777
    return 0o666 & ~_umask()


def _umask() -> int:
    """The process's umask. Linux reports it in /proc; elsewhere the only way is to set
    it and put it back, which a thread creating a file in between would see."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    umask = os.umask(0o077)  # briefly the strictest mask, not 0: a racing file is private, not open
    os.umask(umask)
    return umask


def _sync_directory(directory: Path) -> None:
    """Make the rename itself durable (POSIX); best effort where directories can't be synced."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
