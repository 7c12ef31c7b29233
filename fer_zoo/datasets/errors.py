"""Errors that name the file, line or option at fault."""

from __future__ import annotations

from pathlib import Path

from fer_zoo.errors import InputError, OptionError

__all__ = ["CorruptImageError", "DatasetNotFoundError", "InputError", "LabelError", "OptionError"]


class DatasetNotFoundError(FileNotFoundError, InputError):
    """A dataset root is missing or is not in the expected official layout."""

    def __init__(self, dataset: str, root: str | Path, missing: str | Path, layout: str) -> None:
        """Build the message.

        Args:
            dataset: the dataset's name.
            root: the root that was given.
            missing: the expected path that does not exist.
            layout: a short description of the expected layout.
        """
        super().__init__(
            f"{dataset}: expected {missing} under root {root!s}, which does not exist.\n"
            f"Expected layout:\n{layout}\n"
            f"Pass the dataset folder with --data.root PATH (datasets are never downloaded)."
        )


class LabelError(ValueError, InputError):
    """A label file holds an unknown label id or a malformed line."""

    def __init__(self, path: str | Path, line: int, message: str) -> None:
        """Build the message as ``file:line: message``."""
        super().__init__(f"{path}:{line}: {message}")
        self.path, self.line = Path(path), line


class CorruptImageError(OSError, InputError):
    """An image cannot be read or decoded."""
