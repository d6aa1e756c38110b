"""Errors of the Modbus register-map codec, each carrying the reason as text."""


class MapError(Exception):
    """A register read or value does not fit the map (wrong version, short read, out of range)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ConfigNotMappable(Exception):
    """A config package cannot be written to a one-game Modbus device; the deployment is rejected."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
