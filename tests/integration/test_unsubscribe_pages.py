"""The one-click unsubscribe pages (RFC 8058) on the worker's web server, over real HTTP:
a POST opts out at once, a GET never does, a forged token changes nothing, and a learner
who clicked by mistake can subscribe again."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import pytest

from dripper.inbound.web.server import WebServer
from dripper.inbound.web.unsubscribe import UnsubscribePages, masked
from dripper.models import Learner
from dripper.tokens import sign, unsubscribe_token, unsubscribe_url

KEY = b"unsubscribe-pages-key-0123456789"


@pytest.fixture
async def site(db: str) -> AsyncIterator[str]:
    server = WebServer("127.0.0.1", 0)
    UnsubscribePages(KEY, "Anna from the Sales Academy").add_routes(server.app)
    await server.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        await server.close()


async def _learner(email: str = "ben@example.com") -> Learner:
    return await Learner.create(first_name="Ben", email=email)


async def test_a_one_click_post_opts_the_learner_out_before_it_answers(site: str) -> None:
    learner = await _learner()
    url = unsubscribe_url(site, unsubscribe_token(KEY, learner.id))
    async with aiohttp.ClientSession() as http:
        started = time.monotonic()
        async with http.post(
            url,
            data="List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ) as response:
            body = await response.text()
            answered = time.monotonic() - started
    assert response.status == 200
    assert "You are unsubscribed" in body and "b•••@example.com" in body
    await learner.refresh_from_db()
    assert learner.opted_out_at is not None
    assert answered < 1.0
    assert abs((datetime.now(UTC) - learner.opted_out_at).total_seconds()) < 2


async def test_a_get_shows_the_question_and_never_unsubscribes(site: str) -> None:
    learner = await _learner()
    url = unsubscribe_url(site, unsubscribe_token(KEY, learner.id))
    async with aiohttp.ClientSession() as http:
        for _ in range(3):  # link scanners and previews fetch links, sometimes repeatedly
            async with http.get(url) as response:
                body = await response.text()
                assert response.status == 200
                assert response.headers["Cache-Control"] == "no-store"
                assert "noindex" in response.headers["X-Robots-Tag"]
    assert "Unsubscribe?" in body and '<form method="post">' in body
    assert "Anna from the Sales Academy" in body
    await learner.refresh_from_db()
    assert learner.opted_out_at is None


@pytest.mark.parametrize(
    "make_token",
    [
        lambda learner_id: unsubscribe_token(KEY, learner_id)[:-1] + "a",  # altered MAC
        lambda learner_id: unsubscribe_token(b"another-key-entirely-0123", learner_id),
        lambda learner_id: sign(KEY, "reply", learner_id),  # signed for another purpose
        lambda learner_id: "not-a-token",
    ],
    ids=["altered", "other-key", "other-purpose", "garbage"],
)
async def test_a_forged_token_gets_404_and_changes_nothing(site: str, make_token) -> None:  # type: ignore[no-untyped-def]
    learner = await _learner()
    token = make_token(learner.id)
    if token == unsubscribe_token(KEY, learner.id):
        pytest.fail("the forged token is the real one")
    async with aiohttp.ClientSession() as http:
        async with http.post(unsubscribe_url(site, token), data="List-Unsubscribe=One-Click") as r:
            assert r.status == 404
            assert "not valid" in await r.text()
        async with http.get(unsubscribe_url(site, token)) as r:
            assert r.status == 404
    await learner.refresh_from_db()
    assert learner.opted_out_at is None


async def test_a_learner_who_no_longer_exists_gets_404(site: str) -> None:
    url = unsubscribe_url(site, unsubscribe_token(KEY, 987654))
    async with aiohttp.ClientSession() as http, http.post(url) as response:
        assert response.status == 404


async def test_subscribe_again_undoes_it_and_a_second_post_keeps_the_first_time(site: str) -> None:
    learner = await _learner()
    token = unsubscribe_token(KEY, learner.id)
    url = unsubscribe_url(site, token)
    async with aiohttp.ClientSession() as http:
        async with http.post(url) as response:
            assert f'action="{token}/resubscribe"' in await response.text()
        await learner.refresh_from_db()
        first = learner.opted_out_at
        async with http.post(url) as response:
            assert response.status == 200
        await learner.refresh_from_db()
        assert learner.opted_out_at == first  # the first opt-out's time is kept
        async with http.get(url) as response:
            assert "You are unsubscribed" in await response.text()
        async with http.post(f"{url}/resubscribe") as response:
            assert response.status == 200
            assert "Welcome back" in await response.text()
    await learner.refresh_from_db()
    assert learner.opted_out_at is None


def test_the_address_is_shown_masked() -> None:
    assert masked("anna.schmidt@example.com") == "a•••@example.com"
    assert masked(None) == "your address"
    assert masked("odd") == "your address"
