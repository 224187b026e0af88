"""Receiving over Telegram: the durable getUpdates loop or webhook, events, what dripper does."""
