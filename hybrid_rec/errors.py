"""One exception tree for hybrid_rec.

Every error a user can cause derives from :class:`HybridRecError`, carries a
message that says what was wrong, where (file, column, rows) and how to fix
it, and never needs a traceback to be understood.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = [
    "BatchOutputError",
    "ConfigError",
    "DataValidationError",
    "DatasetNotAvailableError",
    "EmbeddingStoreError",
    "EncoderError",
    "ExplanationError",
    "HybridRecError",
    "MissingDependencyError",
    "ModelChangedError",
    "ModelFileError",
    "NotFittedError",
    "TrainingError",
    "UnknownIdError",
]


class HybridRecError(Exception):
    """Base class of every error raised on purpose by hybrid_rec."""


class ConfigError(HybridRecError, ValueError):
    """A configuration value or file is invalid."""


class DataValidationError(HybridRecError, ValueError):
    """Input data (a frame or a file) does not follow the expected schema.

    Parameters
    ----------
    problem
        What is wrong, in one sentence.
    source
        The file or frame name (``"interactions"``, ``"items.csv"`` ...).
    column
        The offending column, if any.
    rows
        Row positions (0-based, as in the file after its header) that show the
        problem; at most a few are quoted in the message.
    fix
        How to fix it.
    """

    def __init__(
        self,
        problem: str,
        *,
        source: str | None = None,
        column: str | None = None,
        rows: Iterable[int] | None = None,
        fix: str | None = None,
    ) -> None:
        self.problem = problem
        self.source = source
        self.column = column
        self.rows: list[int] = [int(r) for r in rows] if rows is not None else []
        self.fix = fix
        super().__init__(self._format())

    def _format(self) -> str:
        where: list[str] = []
        if self.source:
            where.append(str(self.source))
        if self.column:
            where.append(f"column {self.column!r}")
        if self.rows:
            where.append(f"row(s) {_quote_rows(self.rows)}")
        text = f"{': '.join([', '.join(where)]) + ': ' if where else ''}{self.problem}"
        if self.fix:
            text += f" Fix: {self.fix}"
        return text


def _quote_rows(rows: Sequence[int], limit: int = 5) -> str:
    shown = ", ".join(str(r) for r in rows[:limit])
    if len(rows) > limit:
        shown += f" ... ({len(rows)} rows in all)"
    return shown


class DatasetNotAvailableError(HybridRecError, LookupError):
    """A bundled dataset's package is not installed."""


class UnknownIdError(HybridRecError, KeyError):
    """A user or item id is not known to the model."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class NotFittedError(HybridRecError, RuntimeError):
    """A method needs a fitted model."""


class EncoderError(HybridRecError, RuntimeError):
    """A text encoder could not be loaded or failed to encode."""


class EmbeddingStoreError(HybridRecError, OSError):
    """The embedding store on disk is missing, corrupt or from another encoder."""


class ModelFileError(HybridRecError, OSError):
    """A saved model or a model weight file is missing, tampered with or incompatible."""


class ModelChangedError(ModelFileError):
    """A save would replace a model another writer saved after this one was loaded or saved.

    Saving anyway would silently drop that writer's changes (a service's save
    after a ``hybrid-rec add-items`` run on the same directory, say).
    """


class TrainingError(HybridRecError, RuntimeError):
    """Training diverged (NaN/inf) or could not start."""


class ExplanationError(HybridRecError, RuntimeError):
    """An explanation could not be produced."""


class MissingDependencyError(HybridRecError, ImportError):
    """An optional dependency (an extra such as ``dist``, or a benchmark peer) is not installed.

    The message names the ``pip install`` line that fixes it.
    """


class BatchOutputError(HybridRecError, OSError):
    """A batch job's output already exists, or an unfinished run of another job is in its way."""
