"""Sending over Telegram: the channel on python-telegram-bot, its transport and its budget."""
