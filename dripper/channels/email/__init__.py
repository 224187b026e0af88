"""Sending email: the channel on aiosmtplib and the bytes of each message."""
