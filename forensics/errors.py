"""The one exception type the command line turns into a one-line message."""


class ForensicsError(Exception):
    """A problem the user can fix (bad input, missing file, bad option).

    The CLI prints ``str(error)`` on one line and exits non-zero; anything else
    is a bug and keeps its traceback.
    """
