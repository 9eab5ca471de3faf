"""Exceptions raised by kai, one class per kind of failure.

Catch :class:`KaiError` for every kai failure. Classes that have a built-in counterpart
also derive from it, so ``except ValueError`` still catches invalid input.
"""


class KaiError(Exception):
    """Base class of every kai error; raised as itself for internal failures."""


class InvalidInputError(KaiError, ValueError):
    """An argument or input value is invalid; the message names it."""


class NotFoundError(KaiError, LookupError):
    """A named record or resource does not exist."""


class ModelNotFoundError(KaiError):
    """A model's files are missing or corrupt; the message names the fetch command."""


class ConflictError(KaiError):
    """A write lost a race with another writer; reload and retry."""


class StorageError(KaiError, OSError):
    """Reading or writing files or the database failed."""


class NotSupportedError(KaiError, NotImplementedError):
    """The request is valid but this build or machine cannot serve it."""
