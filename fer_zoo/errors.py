"""Errors in the user's input, which ``fer-zoo`` reports in a line or two, without a traceback."""

from __future__ import annotations


class InputError(Exception):
    """Bad input from the user (a file, a line of it, an option): ``fer-zoo`` prints the message, no traceback.

    The first line of the message names what is wrong; the last line, when there are several, says what to do.
    """


class OptionError(ValueError, InputError):
    """A configuration option has a value the code cannot use (the message names the option)."""


def input_error(error: BaseException) -> InputError | None:
    """The :class:`InputError` behind ``error`` (itself, or what jsonargparse or Lightning wrapped), else None."""
    seen: BaseException | None = error
    for _ in range(10):
        if seen is None or isinstance(seen, InputError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def input_error_message(error: BaseException, sub: str) -> str:
    """One or two lines for bad input: what is wrong (first line) and what to do (last line, if any).

    An error raised in a DataLoader worker arrives with the worker's traceback as its message; its last
    line is the original message.
    """
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if any(line.startswith("Original Traceback") for line in lines):
        last = lines[-1]
        name = type(error).__name__
        lines = [last.split(f"{name}: ", 1)[1] if f"{name}: " in last else last]
    text = lines[0] if len(lines) < 2 else f"{lines[0]}\n{lines[-1]}"
    return f"fer-zoo {sub}: {text}" if sub else f"fer-zoo: {text}"
