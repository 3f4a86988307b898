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
