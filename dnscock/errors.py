"""The one exception base of dnscock, and its few subclasses."""


class DnscockError(Exception):
    """Base of every error dnscock raises on purpose."""


class ConfigError(DnscockError):
    """An option has a value dnscock cannot use."""


class EngineError(DnscockError):
    """The Docker engine could not be reached or answered nonsense."""
