"""Learners: the roster imported from CSV, and the invite links that bind their Telegram chats."""
