"""Errors the library raises on purpose. One-line messages a pipeline engineer can act on."""
from __future__ import annotations


class VoidError(Exception):
    """Base class of void-batch errors."""


class InputError(VoidError):
    """Bad input: a missing/unreadable/corrupt file, a mismatched mask, a bad parameter.

    `shot` names the shot when known; str() then reads "shot <id>: <problem>".
    """

    def __init__(self, problem: str, *, shot: str | None = None):
        super().__init__(problem)
        self.problem = problem
        self.shot = shot

    def for_shot(self, shot: str) -> InputError:
        """The same error, naming `shot` (keeps the first shot name given)."""
        if self.shot is None:
            self.shot = shot
        return self

    def __str__(self) -> str:
        return f"shot {self.shot}: {self.problem}" if self.shot else self.problem


class OutputError(VoidError):
    """An output cannot be written (unwritable folder, full disk, encoder failure)."""


class ModelLoadError(VoidError):
    """Weights or model folders are missing, incomplete or do not match the architecture."""
