"""One error hierarchy: every exception dripper defines for a user to see derives from
DripperError, so the CLI prints it without a traceback and callers catch one type."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import dripper
from dripper.errors import DripperError

# Exceptions that never reach a user: the emulator's own (turned into Bot API answers), and
# the channels' (the Telegram transport's PTB NetworkError subclasses, a refused address),
# which the channels turn into delivery outcomes.
INTERNAL = {
    "dripper.sandbox.telegram.html.EntityParseError",
    "dripper.sandbox.telegram.http.ApiError",
    "dripper.sandbox.telegram.state.GatewayError",
    "dripper.channels.email.message.InvalidAddress",
    "dripper.channels.telegram.transport.NotSent",
    "dripper.channels.telegram.transport.TimedOutNotSent",
    "dripper.channels.telegram.transport.ConnectionLost",
}


def _exceptions() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for module_info in pkgutil.walk_packages(dripper.__path__, "dripper."):
        if module_info.name == "dripper.__main__" or module_info.name.startswith(
            "dripper.migrations."
        ):
            continue  # __main__ runs the CLI when imported
        module = importlib.import_module(module_info.name)
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == module.__name__
                and not name.startswith("_")
            ):
                found[f"{value.__module__}.{name}"] = value
    return found


def test_every_public_exception_of_dripper_is_a_dripper_error() -> None:
    exceptions = _exceptions()
    assert "dripper.curriculum.source.SourceError" in exceptions  # the walk found them
    outside = sorted(
        name
        for name, cls in exceptions.items()
        if not issubclass(cls, DripperError) and name not in INTERNAL
    )
    assert outside == []


def test_the_errors_that_used_to_stand_alone_are_dripper_errors() -> None:
    from dripper.curriculum.checks import CurriculumError
    from dripper.curriculum.source import SourceError
    from dripper.inbox.replies import EmptyMessageError
    from dripper.schedule.slots import WindowNeverOpensError

    for cls in (CurriculumError, SourceError, EmptyMessageError, WindowNeverOpensError):
        assert issubclass(cls, DripperError), cls
