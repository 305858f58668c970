"""Team views never mix their headers, and the API key never shows up where people look."""

from __future__ import annotations

import logging
import random

import anyio
import anyio.lowlevel
import httpx
import pytest
import respx

from rungen_async import AmbiguousRequestError, AsyncRunGen, AuthenticationError, RetryPolicy

from . import payloads
from .conftest import API_KEY, BASE_URL


async def test_with_team_sets_and_clears_the_team_header(
    rungen: AsyncRunGen, api: respx.Router
) -> None:
    """A team view sends x-team-id; with_team(None) sends none; the original is unchanged."""
    route = api.get("/app").respond(200, json={"data": []})

    await rungen.with_team(payloads.TEAM_ID).list_apps()
    await rungen.with_team(payloads.TEAM_ID).with_team(None).list_apps()
    await rungen.list_apps()

    sent = [call.request.headers.get("x-team-id") for call in route.calls]
    assert sent == [payloads.TEAM_ID, None, None]
    assert rungen.team_id is None


async def test_concurrent_views_never_mix_headers(api: respx.Router) -> None:
    """Hundreds of interleaved calls through different views each carry their own team."""
    seen: list[tuple[str | None, str | None]] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        # Yield in the middle so that requests interleave.
        await anyio.lowlevel.checkpoint()
        seen.append((request.headers.get("x-team-id"), request.url.params.get("expect")))
        return httpx.Response(200, json={"data": []})

    teams = [None, "team-a", "team-b", "team-c"]
    async with AsyncRunGen(
        API_KEY, base_url=BASE_URL, transport=httpx.MockTransport(handler)
    ) as client:
        views = {team: client.with_team(team) for team in teams}

        async def call(team: str | None) -> None:
            view = views[team]
            # Ask through the private path so the expected team rides along in the URL.
            await view._request("GET", f"/app?expect={team}")

        order = [random.choice(teams) for _ in range(400)]
        async with anyio.create_task_group() as tg:
            for team in order:
                tg.start_soon(call, team)

    assert len(seen) == 400
    assert all(str(team) == expected for team, expected in seen)
    assert sum(team is None for team, _ in seen) == order.count(None)


async def test_view_shares_the_pool_and_closing_a_view_closes_nothing(api: respx.Router) -> None:
    """Closing a view leaves the client usable; closing the client closes the pool."""
    api.get("/app").respond(200, json={"data": []})
    client = AsyncRunGen(
        API_KEY, base_url=BASE_URL, transport=httpx.MockTransport(api.async_handler)
    )

    async with client.with_team("team-a") as view:
        await view.list_apps()
    await client.list_apps()
    await client.aclose()

    assert client._core.http.is_closed


async def test_api_key_never_appears_in_reprs_errors_or_logs(
    api: respx.Router, caplog: pytest.LogCaptureFixture
) -> None:
    """repr of client and views, error text and reprs, and retry logs hold no key."""
    caplog.set_level(logging.DEBUG)
    api.post(f"/app/{payloads.APP_ID}/run_async").mock(
        side_effect=[httpx.Response(429, headers={"retry-after": "0"}), httpx.Response(500)]
    )
    api.get(f"/app/{payloads.APP_ID}").respond(403, json=payloads.error("unauthorized access"))
    client = AsyncRunGen(
        API_KEY,
        base_url=BASE_URL,
        transport=httpx.MockTransport(api.async_handler),
        retry=RetryPolicy(initial_delay=0, max_delay=0),
    )

    async with client:
        with pytest.raises(AmbiguousRequestError) as ambiguous:
            await client.submit_job(payloads.APP_ID, {"prompt": "x"})
        with pytest.raises(AuthenticationError) as forbidden:
            await client.get_app(payloads.APP_ID)

    texts = [
        repr(client),
        repr(client.with_team("team-a")),
        repr(client._core),
        str(ambiguous.value),
        repr(ambiguous.value),
        str(forbidden.value),
        repr(forbidden.value),
        repr(forbidden.value.response.request.headers),
        repr(vars(forbidden.value)),
        *(record.getMessage() for record in caplog.records),
    ]
    assert caplog.records  # the retry was logged
    assert not [text for text in texts if API_KEY in text]


def test_bad_api_key_message_does_not_echo_it() -> None:
    """A key with a stray newline is refused without printing the key."""
    with pytest.raises(ValueError, match="white space") as caught:
        AsyncRunGen(API_KEY + "\n", base_url=BASE_URL)

    assert API_KEY not in str(caught.value)
