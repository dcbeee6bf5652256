"""How tfe tells a user's bad input from its own bugs.

``InputError`` (a ValueError) is raised for anything wrong with what the user gave: a data
file, a folder, a CSV row, an option. Its message is one line that names the file (with the
row where there is one) or the argument, and says what is wrong. OSError is the other
expected failure: the file system refused (missing file, permission, disk full), and its
message names the path too.

The console commands turn exactly these two into ``prog: error: <message>`` and exit 1
(``one_line_errors``). Every other exception keeps its traceback: it is a bug in tfe.
"""

from __future__ import annotations

import contextlib

__all__ = ["InputError", "one_line", "one_line_errors"]


class InputError(ValueError):
    """Bad user input; the message names the file or argument and what is wrong."""


def one_line(error: BaseException) -> str:
    """The message of an exception as a single line."""
    text = " ".join(str(error).split())
    return text or type(error).__name__


@contextlib.contextmanager
def one_line_errors(prog: str):
    """Inside: InputError and OSError become ``SystemExit('prog: error: ...')`` (printed
    on stderr, exit status 1); anything else propagates with its traceback."""
    try:
        yield
    except (InputError, OSError) as e:
        raise SystemExit(f"{prog}: error: {one_line(e)}") from None
