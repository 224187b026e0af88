"""The local Telegram Bot API emulator: an ASGI app that behaves like api.telegram.org."""
