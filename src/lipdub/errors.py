"""The one user-facing error type: a file and what is wrong with it, printed as one line by the CLI."""

from __future__ import annotations

from os import PathLike


class LipdubError(Exception):
    """A problem the user can fix. `str(err)` is a single line naming the file (if any) and the problem."""

    def __init__(self, problem: str, path: str | PathLike[str] | None = None) -> None:
        self.problem = problem
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


class NoFaceError(LipdubError):
    """No usable face was found where one was required."""


class MediaError(LipdubError):
    """A media file cannot be read or has no usable stream."""


class CheckpointError(LipdubError):
    """A checkpoint file is unreadable, corrupt, or does not fit the model."""
