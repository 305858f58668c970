"""Accounts and team scope, validation, idempotency, response variants and request records."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rungen_async.emulator import DEMO_API_KEY, Accounts, Emulator, read_png_header

from ._helpers import (
    ALICE_KEY,
    BOB_KEY,
    CAROL_KEY,
    ManualClock,
    accounts,
    app_body,
    call,
    create_app,
    job_body,
    submit,
)


@pytest.fixture
def emulator() -> Emulator:
    """An emulator with alice (OWNER of acme), bob (MEMBER of acme) and carol."""
    return Emulator(accounts=accounts(), clock=ManualClock(), seed=7)


@pytest.fixture
def acme(emulator: Emulator) -> str:
    """The id of team acme."""
    return emulator.accounts.team_named("acme").id


def test_bad_or_missing_key_is_403(emulator: Emulator) -> None:
    """An unknown or missing x-api-key answers 403 with an error body."""
    bad = call(emulator, "GET", "/app", key="rg-wrong")
    missing = call(emulator, "GET", "/app", key=None)

    assert bad.status == 403
    assert missing.status == 403
    assert "API key" in bad.json()["error"]


def test_personal_apps_are_private(emulator: Emulator) -> None:
    """Another user's personal app is a 404 and is not listed."""
    app_id = create_app(emulator, key=ALICE_KEY)

    assert call(emulator, "GET", f"/app/{app_id}", key=CAROL_KEY).status == 404
    assert call(emulator, "GET", "/app", key=CAROL_KEY).json() == {"data": []}
    assert call(emulator, "GET", f"/app/{app_id}", key=ALICE_KEY).status == 200


def test_team_apps_belong_to_the_team(emulator: Emulator, acme: str) -> None:
    """A team app is visible to members with x-team-id, and not in anyone's personal scope."""
    app_id = create_app(emulator, key=ALICE_KEY, team=acme)
    created = call(emulator, "GET", f"/app/{app_id}", key=BOB_KEY, team=acme).json()

    assert created["owner_team_id"] == acme
    assert created["owner_user_id"] is None
    assert created["created_by"] == emulator.accounts.user_named("alice").id
    assert call(emulator, "GET", f"/app/{app_id}", key=ALICE_KEY).status == 404
    listed = call(emulator, "GET", "/app", key=BOB_KEY, team=acme).json()["data"]
    assert [app["id"] for app in listed] == [app_id]


def test_non_member_is_refused(emulator: Emulator, acme: str) -> None:
    """A team the caller is not a member of (or that does not exist) answers 403."""
    refused = call(emulator, "GET", "/app", key=CAROL_KEY, team=acme)
    unknown = call(emulator, "GET", "/app", key=ALICE_KEY, team="no-such-team")

    assert refused.status == 403
    assert acme in refused.json()["error"]
    assert unknown.status == 403


def test_member_cannot_delete_but_can_create_and_edit(emulator: Emulator, acme: str) -> None:
    """A MEMBER creates, edits and runs jobs; deleting takes an OWNER or ADMIN."""
    app_id = create_app(emulator, key=BOB_KEY, team=acme)
    path = f"/app/{app_id}"

    edited = call(emulator, "PUT", path, {"name": "renamed"}, key=BOB_KEY, team=acme)
    forbidden = call(emulator, "DELETE", path, key=BOB_KEY, team=acme)
    deleted = call(emulator, "DELETE", path, key=ALICE_KEY, team=acme)

    assert edited.json()["data"]["name"] == "renamed"
    assert forbidden.status == 403
    assert "MEMBER" in forbidden.json()["error"]
    assert deleted.status == 204


def test_team_settings_restrict_members() -> None:
    """member_can_create false in the config makes a MEMBER's create a 403."""
    config = {
        "users": [{"name": "bob", "api_key": BOB_KEY}],
        "teams": [{"name": "strict", "members": {"bob": "MEMBER"}, "member_can_create": False}],
    }
    emulator = Emulator(accounts=Accounts.from_dict(config), clock=ManualClock())
    team = emulator.accounts.team_named("strict").id

    assert call(emulator, "POST", "/app", app_body(), key=BOB_KEY, team=team).status == 403


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"configuration": {"gpu_tier": "STANDARD"}}, "'name'", id="name"),
        pytest.param({"name": "x", "workflow": {"model_url": "u"}}, "'configuration'", id="conf"),
        pytest.param(
            {"name": "x", "configuration": {"gpu_tier": "HUGE"}, "workflow": {"model_url": "u"}},
            "'configuration.gpu_tier'",
            id="tier",
        ),
        pytest.param(
            {"name": "x", "configuration": {"gpu_tier": "BASIC"}, "workflow": {}},
            "'workflow.model_url'",
            id="model_url",
        ),
        pytest.param(
            {
                "name": "x",
                "configuration": {"gpu_tier": "BASIC"},
                "workflow": {"model_url": "u", "tools": {"loras": [{"id": "1", "name": "n"}]}},
            },
            "'workflow.tools.loras[0].versionId'",
            id="lora",
        ),
    ],
)
def test_create_app_names_the_bad_field(emulator: Emulator, body: object, field: str) -> None:
    """A bad create body answers 400 with an error naming the field."""
    response = call(emulator, "POST", "/app", body)

    assert response.status == 400
    assert field in response.json()["error"]


def test_bad_json_and_missing_input(emulator: Emulator) -> None:
    """Malformed JSON and a run_async body without input answer 400."""
    app_id = create_app(emulator)
    headers = {"x-api-key": DEMO_API_KEY}
    from rungen_async.emulator import EmulatorRequest

    garbled = emulator.handle(
        EmulatorRequest(method="POST", path="/app", headers=headers, body=b"{nope")
    )
    no_input = call(emulator, "POST", f"/app/{app_id}/run_async", {"prompt": "x"})

    assert garbled.status == 400
    assert "JSON" in garbled.json()["error"]
    assert no_input.status == 400
    assert "'input'" in no_input.json()["error"]


def test_update_only_changes_lora_weights(emulator: Emulator) -> None:
    """PUT may change a LoRA's weight, not swap LoRAs, and not the GPU tier."""
    lora = {"id": "1", "versionId": "2", "downloadUrl": "https://d/2", "name": "L", "weight": 0.7}
    body = app_body()
    body["workflow"]["tools"] = {"loras": [lora]}
    app_id = call(emulator, "POST", "/app", body).json()["data"]["id"]
    path = f"/app/{app_id}"

    reweighted = call(
        emulator, "PUT", path, {"workflow": {"tools": {"loras": [lora | {"weight": 0.3}]}}}
    )
    swapped = call(emulator, "PUT", path, {"workflow": {"tools": {"loras": [lora | {"id": "9"}]}}})
    tier = call(emulator, "PUT", path, {"configuration": {"gpu_tier": "BASIC"}})

    assert reweighted.json()["data"]["workflow"]["tools"]["loras"][0]["weight"] == 0.3
    assert swapped.status == 400
    assert tier.status == 400


def test_unknown_routes(emulator: Emulator) -> None:
    """An unknown path is 404 and a wrong method 405, both with an error body."""
    assert call(emulator, "GET", "/nope").status == 404
    wrong = call(emulator, "PATCH", "/app")
    assert wrong.status == 405
    assert wrong.header("allow") == "POST, GET"


def test_idempotency_key_replays_the_first_response(emulator: Emulator) -> None:
    """A repeated Idempotency-Key returns the first response and creates nothing."""
    app_id = create_app(emulator, active_workers=1)
    path = f"/app/{app_id}/run_async"
    headers = {"idempotency-key": "k-1"}

    first = call(emulator, "POST", path, {"input": {"prompt": "a"}}, headers=headers)
    again = call(emulator, "POST", path, {"input": {"prompt": "a"}}, headers=headers)
    other_user = call(emulator, "POST", "/app", app_body(), key=ALICE_KEY, headers=headers)
    misuse = call(emulator, "POST", path, {"input": {"prompt": "b"}}, headers=headers)

    assert again.body == first.body
    assert again.header("idempotent-replayed") == "true"
    assert emulator.stats.jobs_created == 1
    assert emulator.stats.idempotent_replays == 1
    assert other_user.status == 201  # keys are per account
    assert misuse.status == 422


def test_idempotency_keys_off_serves_the_api_as_documented() -> None:
    """With idempotency_keys=False a repeated key runs the POST again, as the real API does."""
    documented = Emulator(clock=ManualClock(), idempotency_keys=False)
    app_id = create_app(documented, active_workers=1)
    path = f"/app/{app_id}/run_async"
    headers = {"idempotency-key": "k-1"}

    first = call(documented, "POST", path, {"input": {"prompt": "a"}}, headers=headers)
    again = call(documented, "POST", path, {"input": {"prompt": "a"}}, headers=headers)

    assert first.body != again.body
    assert again.header("idempotent-replayed") is None
    assert documented.stats.jobs_created == 2
    assert documented.stats.idempotent_replays == 0


def test_alternate_variants(emulator: Emulator) -> None:
    """variants="alternate" serves the other documented shape of each endpoint."""
    alternate = Emulator(clock=ManualClock(), variants="alternate", seed=1)
    created = call(alternate, "POST", "/app", app_body(active_workers=1)).json()
    app_id = created["id"]
    submitted = call(alternate, "POST", f"/app/{app_id}/run_async", {"input": {"p": 1}}).json()
    job_id = submitted["data"]["id"]
    job = job_body(alternate, app_id, job_id)

    assert created["user_id"] == alternate.accounts.user_named("demo").id
    assert "team_id" in created
    assert set(call(alternate, "GET", f"/app/{app_id}").json()) == {"data"}
    assert "id" in call(alternate, "PUT", f"/app/{app_id}", {"name": "n"}).json()
    assert job["job_id"] == job_id
    assert job["input"] == {"p": 1}
    assert job["status"] == "IN_PROGRESS"
    assert "T" in job["created_at"]


def test_reference_variants(emulator: Emulator) -> None:
    """The default variants: bare run_async with job_id, job reads with id and request."""
    app_id = create_app(emulator)

    submitted = call(emulator, "POST", f"/app/{app_id}/run_async", {"input": {"p": 1}}).json()
    job = job_body(emulator, app_id, submitted["job_id"])

    assert submitted["status"] == "QUEUED"
    assert submitted["app_id"] == app_id
    assert job["id"] == submitted["job_id"]
    assert job["request"] == {"p": 1}
    assert job["status"] == "IN_QUEUE"
    assert " " in job["created_at"]


def test_timestamps_follow_the_clock() -> None:
    """created_at is start_time plus the clock's progress, in the documented formats."""
    clock = ManualClock()
    emulator = Emulator(clock=clock, start_time=datetime(2025, 3, 2, 8, 15, 9, tzinfo=UTC))
    app_id = create_app(emulator)
    clock.time += 61

    job = job_body(emulator, app_id, submit(emulator, app_id))

    assert call(emulator, "GET", f"/app/{app_id}").json()["created_at"] == "2025-03-02T08:15:09"
    assert job["created_at"] == "2025-03-02 08:16:10"


def test_requests_are_recorded_without_the_key(emulator: Emulator) -> None:
    """Records keep method, path, headers and body, never the API key."""
    app_id = create_app(emulator, key=ALICE_KEY)

    record = emulator.requests[-1]

    assert (record.method, record.path, record.status) == ("POST", "/app", 201)
    assert "x-api-key" not in record.headers
    assert ALICE_KEY not in repr(record)
    assert record.json["name"] == "demo"
    assert record.user_id == emulator.accounts.user_named("alice").id
    assert app_id


def test_output_image_is_served_without_a_key(emulator: Emulator) -> None:
    """A completed job's image URL answers a PNG to a request without x-api-key."""
    app_id = create_app(emulator, active_workers=1)
    job_id = submit(emulator, app_id, prompt="a red fox", width=1024, height=512, _duration=0)
    url = job_body(emulator, app_id, job_id)["result"]["images"][0]["image"]
    path = url.removeprefix("http://127.0.0.1")

    image = call(emulator, "GET", path, key=None)
    unknown = call(emulator, "GET", "/_emulator/outputs/nope.png", key=None)

    assert image.status == 200
    assert image.header("content-type") == "image/png"
    assert read_png_header(image.body) == (256, 128, 8, 2)
    assert unknown.status == 404


def test_result_override_and_no_image(emulator: Emulator) -> None:
    """input._result is returned as the result, and such a job has no image."""
    app_id = create_app(emulator, active_workers=1)
    job_id = submit(emulator, app_id, _duration=0, _result={"text": "hi"})

    assert job_body(emulator, app_id, job_id)["result"] == {"text": "hi"}
    assert call(emulator, "GET", f"/_emulator/outputs/{job_id}.png").status == 404


def test_created_at_agrees_with_the_wall_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """created_at follows the wall clock even when the first stamp comes after other
    requests (it ran ahead by the time between the first request and the first stamp)."""
    from rungen_async.emulator import _emulator

    wall = [datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)]

    class Wall(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Wall:
            return cls.fromtimestamp(wall[0].timestamp(), tz)

    monkeypatch.setattr(_emulator, "datetime", Wall)
    clock = ManualClock()
    emulator = Emulator(clock=clock)
    assert call(emulator, "GET", "/nope").status == 404  # a first request, nothing stamped
    clock.time += 7.0  # the monotonic clock and the wall clock move on together
    wall[0] += timedelta(seconds=7)

    created = call(emulator, "POST", "/app", app_body()).json()
    stamp = datetime.fromisoformat(created.get("data", created)["created_at"])

    assert stamp.replace(tzinfo=UTC) == wall[0]  # it was 7 s ahead: 12:00:14


def test_team_header_null_is_the_personal_context() -> None:
    """The create tutorial says x-team-id "can be null": `x-team-id: null` is personal."""
    emulator = Emulator(clock=ManualClock())

    created = call(emulator, "POST", "/app", app_body(), team="null")
    listed = call(emulator, "GET", "/app").json()

    assert created.status == 201
    app = created.json().get("data", created.json())
    assert app["id"] in json.dumps(listed)  # listed in the personal context
