"""One-click unsubscribe (RFC 8058): the https link in every email's List-Unsubscribe header.

    GET  /u/TOKEN              a plain page: "Unsubscribe?" with one button (never unsubscribes:
                               mail scanners and link previews fetch links)
    POST /u/TOKEN              unsubscribes at once: the mail client's one-click POST
                               (body `List-Unsubscribe=One-Click`) and the page's button alike
    POST /u/TOKEN/resubscribe  undoes it, for a learner who clicked by mistake

TOKEN is the learner's signed unsubscribe token (dripper.tokens.unsubscribe_token): a forged
or altered one gets a 404 page and changes nothing. Opting out stops every drip to the learner,
on every channel, as STOP by email or /stop on Telegram does. The pages need no cookie, no
script and no login, and keep the address out of sight but for a hint (a•••@example.com).
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from aiohttp import web

from dripper import oplog
from dripper.store.learners import opt_out_state, set_opted_out
from dripper.tokens import UNSUBSCRIBE, UNSUBSCRIBE_PATH, verify

log = logging.getLogger("dripper.inbound.web.unsubscribe")

_HEADERS = {
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
}
_STYLE = (
    "body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:32rem;"
    "margin:3rem auto;padding:0 1rem;color:#1f2937;line-height:1.5}"
    "button{font:inherit;padding:.6rem 1.2rem;border:0;border-radius:.4rem;background:#1f2937;"
    "color:#fff;cursor:pointer}.quiet{color:#6b7280;font-size:.9rem}"
)


def masked(address: str | None) -> str:
    """`anna@example.com` as `a•••@example.com`: enough to recognise, not to harvest."""
    if not address or "@" not in address:
        return "your address"
    local, _, domain = address.rpartition("@")
    return f"{local[:1]}•••@{domain}"


class UnsubscribePages:
    """The routes above, for mail sent by `sender` (the From name learners know)."""

    def __init__(
        self,
        signing_key: bytes,
        sender: str,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._key = signing_key
        self._sender = sender
        self._now = now

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get(UNSUBSCRIBE_PATH + "{token}", self._show)
        app.router.add_post(UNSUBSCRIBE_PATH + "{token}", self._unsubscribe)
        app.router.add_post(UNSUBSCRIBE_PATH + "{token}/resubscribe", self._resubscribe)

    def _learner(self, request: web.Request) -> int | None:
        ids = verify(self._key, UNSUBSCRIBE, request.match_info["token"])
        return ids[0] if ids is not None and len(ids) == 1 else None

    async def _show(self, request: web.Request) -> web.Response:
        learner_id = self._learner(request)
        state = await opt_out_state(learner_id) if learner_id is not None else None
        if state is None:
            return self._not_valid()
        email, opted_out = state
        if opted_out:
            return self._unsubscribed(request, email)
        sender = html.escape(self._sender)
        return _page(
            "Unsubscribe",
            f"<h1>Unsubscribe?</h1><p>{html.escape(masked(email))} will get no more messages "
            f"from {sender}: no more tips, quizzes or reminders, by email or Telegram.</p>"
            '<form method="post"><button type="submit">Unsubscribe</button></form>'
            '<p class="quiet">To keep getting them, just close this page.</p>',
        )

    async def _set(self, request: web.Request, *, opted_out: bool) -> tuple[int, bool] | None:
        """Opt the token's learner out or in: None for a token that names nobody, else the
        learner and whether that changed something."""
        learner_id = self._learner(request)
        if learner_id is None:
            return None
        changed = await set_opted_out(learner_id, self._now(), opted_out=opted_out)
        return None if changed is None else (learner_id, changed)

    async def _unsubscribe(self, request: web.Request) -> web.Response:
        result = await self._set(request, opted_out=True)
        if result is None:
            return self._not_valid()
        learner_id, changed = result
        if changed:
            one_click = "List-Unsubscribe=One-Click" in (await request.text())
            how = "one-click" if one_click else "unsubscribe-page"
            oplog.event(log, "opt-out", learner=learner_id, via=how)
        state = await opt_out_state(learner_id)
        return self._unsubscribed(request, state[0] if state else None)

    async def _resubscribe(self, request: web.Request) -> web.Response:
        result = await self._set(request, opted_out=False)
        if result is None:
            return self._not_valid()
        learner_id, changed = result
        if changed:
            oplog.event(log, "opt-in", learner=learner_id, via="unsubscribe-page")
        return _page(
            "Subscribed again",
            f"<h1>Welcome back</h1><p>You will get the next messages from "
            f"{html.escape(self._sender)} again.</p>",
        )

    def _unsubscribed(self, request: web.Request, email: str | None) -> web.Response:
        # Relative to /u/TOKEN, so that it works under any prefix the reverse proxy adds.
        again = html.escape(f"{request.match_info['token']}/resubscribe", quote=True)
        return _page(
            "Unsubscribed",
            f"<h1>You are unsubscribed</h1><p>{html.escape(masked(email))} will get no more "
            f"messages from {html.escape(self._sender)}.</p>"
            f'<form method="post" action="{again}"><p class="quiet">Clicked by mistake? '
            '<button type="submit">Subscribe again</button></p></form>',
        )

    def _not_valid(self) -> web.Response:
        return _page(
            "Link not valid",
            "<h1>This link is not valid</h1><p>It may be incomplete: open it again from the "
            "email, or reply STOP to any of our emails.</p>",
            status=404,
        )


def _page(title: str, body: str, *, status: int = 200) -> web.Response:
    text = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body>{body}</body></html>"
    )
    return web.Response(
        text=text, status=status, content_type="text/html", charset="utf-8", headers=_HEADERS
    )
