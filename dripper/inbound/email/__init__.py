"""Receiving email: the IMAP poller, parsing and classifying mail, filing it in the inbox."""
