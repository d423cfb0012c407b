"""The base of every domain refusal (docs/how-it-works.md: the bottom layer).

Each app raises its own subclass (SchedulingError, BackfillError, OfferError); the API
turns any of them into a 409 with the message as is, without knowing the apps above.
"""


class DomainError(Exception):
    """A state change that cannot happen; the message says why, in the user's words."""
