"""The exceptions a user can cause, each carrying a message fit to print as is."""


class DripperError(Exception):
    """A problem the user can fix (bad input, bad configuration); printed without a traceback."""


class ConfigError(DripperError):
    """dripper.toml or a DRIPPER_* variable is wrong or missing."""
