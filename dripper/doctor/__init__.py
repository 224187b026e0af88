"""`dripper doctor`: every setting and outside service `dripper run` depends on, checked.

Each check gives one `Finding`: ok, a warning (works, but something a trainer should know:
mail without DKIM, unsubscribe by mailto only) or a problem (`dripper run` would fail or
misbehave), with the fix. Checked: the configuration, the curricula, the database and its
migrations, the bot token (getMe) and webhook, SMTP (connect, EHLO, STARTTLS, login), IMAP
(login, mailbox), the HMAC key, DKIM (the key, and its DNS record when DNS answers) and
`public_url`. Nothing is sent and nothing is written (a SQLite file not created yet stays so).
"""

from dripper.doctor.findings import Finding, Level
from dripper.doctor.run import DoctorOptions, diagnose

__all__ = ["DoctorOptions", "Finding", "Level", "diagnose"]
