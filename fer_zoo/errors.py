"""Errors in the user's input, which ``fer-zoo`` reports in a line or two, without a traceback."""

from __future__ import annotations


class InputError(Exception):
    """Bad input from the user (a file, a line of it, an option): ``fer-zoo`` prints the message, no traceback.

    The first line of the message names what is wrong; the last line, when there are several, says what to do.
    """


class OptionError(ValueError, InputError):
    """A configuration option has a value the code cannot use (the message names the option)."""
