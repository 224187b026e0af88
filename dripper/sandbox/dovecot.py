"""A throwaway Dovecot IMAP server: a child process with its own configuration in a temp dir.

Used by the email tests (through tests/fixtures/mail.py), `dripper bench ingest-email` and
`dripper demo`. 127.0.0.1 on a free port, no TLS, passwd-file users with one password, maildirs
under the temp dir; `deliver` hands a message to dovecot-lda as an MTA would.

Dovecot needs Debian's `dovecot-imapd` (and `dovecot-core`) and root: the static userdb runs
mail access as nobody/nogroup, which only root may switch to. `dovecot_missing()` says why it
cannot run here, so callers can skip or fall back to dripper.sandbox.imap.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from dripper.config import ImapSettings

PASSWORD = "secret"
_LDA_PLACES = ("/usr/lib/dovecot/dovecot-lda", "/usr/libexec/dovecot/dovecot-lda")

_CONFIG = """\
protocols = imap
listen = 127.0.0.1
base_dir = {dir}/run
state_dir = {dir}/state
instance_name = dripper-test-{port}
log_path = {dir}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:~/Maildir
postmaster_address = postmaster@example.com
mail_max_userip_connections = 100
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {dir}/passwd
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={dir}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""


def dovecot_binary() -> str | None:
    """The `dovecot` command: on PATH, else where Debian puts it (/usr/sbin is not on every
    user's PATH)."""
    return shutil.which("dovecot") or shutil.which("dovecot", path="/usr/sbin:/usr/local/sbin")


def _lda() -> str | None:
    return next((place for place in _LDA_PLACES if Path(place).exists()), None)


def dovecot_missing() -> str | None:
    """Why Dovecot cannot run here, or None."""
    if dovecot_binary() is None or _lda() is None:
        return "Dovecot is not installed: apt-get install -y dovecot-imapd (Debian/Ubuntu)"
    if os.geteuid() != 0:
        return "the Dovecot test server runs as root (its static userdb switches to nobody)"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Dovecot:
    """A Dovecot child process on 127.0.0.1 with its own configuration and maildirs."""

    def __init__(self, users: int = 200) -> None:
        # The users exist from the start: Dovecot notices a changed passwd file by its mtime,
        # which misses two changes within one second.
        self._free = [f"user{n}" for n in range(1, users + 1)]
        self.dir = Path(tempfile.mkdtemp(prefix="dripper-dovecot-"))
        self.dir.chmod(0o755)
        self.port = _free_port()
        self.config = self.dir / "dovecot.conf"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20) -> Dovecot:
        binary, missing = dovecot_binary(), dovecot_missing()
        if binary is None or missing is not None:
            raise RuntimeError(missing or "Dovecot is not installed")
        for name in ("run", "state"):
            (self.dir / name).mkdir()
        home = self.dir / "home"
        home.mkdir()
        home.chmod(0o777)  # each user's home is created by Dovecot as nobody
        (self.dir / "passwd").write_text(
            "".join(f"{name}:{{PLAIN}}{PASSWORD}\n" for name in self._free)
        )
        self.config.write_text(_CONFIG.format(dir=self.dir, port=self.port))
        self.process = subprocess.Popen(
            [binary, "-F", "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._wait_for_greeting(timeout)
        return self

    def _wait_for_greeting(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                _, err = self.process.communicate()
                raise RuntimeError(f"dovecot exited: {err.decode(errors='replace')}{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
                    greeting = sock.recv(200)
                if greeting.startswith(b"* OK"):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"dovecot sent no greeting within {timeout} s{self.log()}")
            time.sleep(0.05)  # the server is starting up; nothing else to wait on

    def log(self) -> str:
        path = self.dir / "dovecot.log"
        return "\n" + path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def new_user(self) -> str:
        """A user (and so a mailbox) nobody has used yet."""
        if not self._free:
            raise RuntimeError("no Dovecot test users left: start Dovecot(users=...) with more")
        return self._free.pop(0)

    def settings(self, user: str) -> ImapSettings:
        return ImapSettings(host="127.0.0.1", port=self.port, security="none", username=user)

    def deliver(self, user: str, message: bytes, sender: str = "someone@example.org") -> None:
        """Deliver like an MTA does, with dovecot-lda."""
        subprocess.run(
            [_lda() or _LDA_PLACES[0], "-c", str(self.config), "-d", user, "-f", sender],
            input=message,
            check=True,
            capture_output=True,
        )

    def maildir(self, user: str) -> Path:
        return self.dir / "home" / user / "Maildir"

    def reset_uidvalidity(self, user: str) -> None:
        """Make Dovecot rebuild the mailbox index: the mailbox gets a new UIDVALIDITY and every
        message a new UID. Close IMAP sessions on the mailbox first."""
        maildir = self.maildir(user)
        for path in [maildir / "dovecot-uidlist", *maildir.glob("dovecot.index*")]:
            path.unlink(missing_ok=True)
