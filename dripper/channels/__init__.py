"""Delivery channels: Telegram and email behind one small protocol, and their transports."""
