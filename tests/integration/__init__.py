"""Tests against real servers on loopback: the emulator, aiosmtpd, IMAP servers, PostgreSQL."""
