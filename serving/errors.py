"""Errors a user can fix: the command line prints them as one sentence, the service answers 4xx."""


class RasidError(Exception):
    """Base class: the message is a full sentence saying what is wrong and, where possible, what to do."""


class DataError(RasidError):
    """A data row or file that cannot be used; the message names the file and line."""


class BundleError(RasidError):
    """A bundle folder that cannot be loaded: missing files, a newer format, an inconsistent manifest."""
