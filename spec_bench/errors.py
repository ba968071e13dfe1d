"""The one exception type users see as a single clear line."""


class HarnessError(Exception):
    """Bad input or an unusable environment; the message is the whole story."""
