"""`dripper demo`: the whole drip on one machine, with local stand-ins for Telegram and mail."""
