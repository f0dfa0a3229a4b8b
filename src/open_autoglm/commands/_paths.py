"""Paths from the command line, checked before anything runs or is sent.

Each check raises :class:`UsageError` with one line that names the flag, the path and what
is wrong with it: a directory where a file is wanted, a file where a directory is wanted, a
device, FIFO or socket (``/dev/null``, a named pipe) where a regular file is wanted, a
location that cannot be written (probed by creating and removing a file there, so a read-only
mount or ``/proc`` is caught even for root), a file that cannot be read. Paths are taken
literally: nothing here expands ``~``, ``*``, ``?`` or ``[...]``.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from open_autoglm.commands._errors import UsageError


def _kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "a file"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def input_file(path: Path, flag: str) -> Path:
    """A regular file that can be read."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise UsageError(f"{flag} {path}: no such file") from None
    except OSError as exc:
        raise UsageError(f"{flag} {path}: cannot be read ({exc.strerror})") from None
    if not stat.S_ISREG(mode):
        raise UsageError(f"{flag} {path}: is {_kind(mode)}, not a file")
    if not os.access(path, os.R_OK):
        raise UsageError(f"{flag} {path}: cannot be read (permission denied)")
    return path


def input_dir(path: Path, flag: str) -> Path:
    """A directory that exists and can be read."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise UsageError(f"{flag} {path}: no such directory") from None
    except OSError as exc:
        raise UsageError(f"{flag} {path}: cannot be read ({exc.strerror})") from None
    if not stat.S_ISDIR(mode):
        raise UsageError(f"{flag} {path}: is {_kind(mode)}, not a directory")
    return path


def output_file(path: Path, flag: str) -> Path:
    """A file that can be created (or replaced) at ``path``: not a directory or a special
    file, under a directory (existing, or to be made under one) that can be written."""
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):  # the parents say why
        mode = None
    except OSError as exc:
        raise UsageError(f"{flag} {path}: cannot be used ({exc.strerror})") from None
    if mode is not None and not stat.S_ISREG(mode):
        hint = "; give the name of a file inside it" if stat.S_ISDIR(mode) else ""
        raise UsageError(f"{flag} {path}: is {_kind(mode)}, not a file{hint}")
    _writable_dir(path.parent, flag, path)
    return path


def output_dir(path: Path, flag: str) -> Path:
    """A directory that exists or can be made, and can be written."""
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):  # the parents say why
        mode = None
    except OSError as exc:
        raise UsageError(f"{flag} {path}: cannot be used ({exc.strerror})") from None
    if mode is not None and not stat.S_ISDIR(mode):
        raise UsageError(f"{flag} {path}: is {_kind(mode)}, not a directory")
    _writable_dir(path, flag, path)
    return path


def _writable_dir(directory: Path, flag: str, path: Path) -> None:
    """The nearest existing ancestor of ``directory`` (itself included) is a directory where
    a file can be created."""
    existing = directory
    while True:
        try:
            mode = existing.stat().st_mode
            break
        except (FileNotFoundError, NotADirectoryError):
            if existing.parent == existing:
                raise UsageError(f"{flag} {path}: no such location") from None
            existing = existing.parent
        except OSError as exc:
            raise UsageError(f"{flag} {path}: cannot be used ({exc.strerror})") from None
    if not stat.S_ISDIR(mode):
        raise UsageError(f"{flag} {path}: {existing} is {_kind(mode)}, not a directory")
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".open-autoglm-probe-")
    except OSError as exc:
        raise UsageError(f"{flag} {path}: cannot write in {existing} ({exc.strerror})") from None
    os.close(fd)
    os.unlink(probe)
