"""Errors that name the input and the reason, in one line.

Every error a user can cause (a bad file, a scene that misses the AOI, a
locked store) is an :class:`InputError`; the CLI prints ``str(err)`` on
stderr and exits with code 2 (see shared/DESIGN.md).
"""

from __future__ import annotations


class MonitorError(Exception):
    """Base class of the package's errors."""


class InputError(MonitorError, ValueError):
    """Bad user input: ``InputError(source, reason)`` -> "source: reason".

    ``source`` names the input (a path, an AOI id, a scene id) so that a
    message in a batch log says which input failed and why.
    """

    def __init__(self, source: object, reason: str):
        self.source = str(source)
        self.reason = " ".join(str(reason).split())  # always one line
        super().__init__(f"{self.source}: {self.reason}")


class AOIError(InputError):
    """An AOI file that breaks the contract of shared/DESIGN.md."""


class SceneError(InputError):
    """A scene that cannot be read, has no georeference, misses the AOI..."""


class StoreError(InputError):
    """The store cannot be opened or written (locked, corrupt, read-only)."""


def read_json(path, error: type[InputError] = InputError):
    """Parse the JSON file ``path``; any failure is ``error(path, reason)``
    in one line (no such file, unreadable, invalid JSON with line/column)."""
    import json
    from pathlib import Path

    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(path, "no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise error(path, f"cannot read file ({e.__class__.__name__}: {e})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise error(path, f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
