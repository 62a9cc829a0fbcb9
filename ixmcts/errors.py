"""One exception type for bad input, so every front end reports it the same way."""


class IxmctsError(Exception):
    """A user-facing error: bad input, a missing file, an invalid setting.

    The message names what is wrong and where; front ends print it and exit non-zero.
    """
