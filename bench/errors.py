"""The bench's one exception: a case cannot run, or the servers it compares disagree."""

from __future__ import annotations


class BenchError(RuntimeError):
    """A case cannot run or its servers disagree; the message says why."""


def describe(error: Exception) -> str:
    """A BenchError's message; any other error's type and message (a bug, whose traceback is worth showing)."""
    return str(error) if isinstance(error, BenchError) else f"{type(error).__name__}: {error}"
