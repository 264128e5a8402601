"""Typed errors whose messages are written for the person who has to act on them.

Every error raised on purpose by the engine derives from :class:`DDICError`, so the CLI (and later the
Slicer worker) can show the message as it is, without a traceback, and anything else stays a bug.
Messages say *what* is wrong, *where* (file, option, value) and *what to do*.
"""


class DDICError(Exception):
    """Base class of the engine's user-facing errors."""


class DDICInputError(DDICError):
    """An input image, folder or option is unusable (missing, wrong shape, wrong value)."""


class DDICModelError(DDICError):
    """A model file or its model card is missing, corrupt or does not fit the requested use."""


class DDICOutputError(DDICInputError):
    """An output folder or file cannot be written (permission, read-only disk, disk full, in use).

    A subclass of :class:`DDICInputError` because the fix is the user's, like a bad input: the JSON
    progress events report it as ``input`` and the CLI exits with code 2.
    """
