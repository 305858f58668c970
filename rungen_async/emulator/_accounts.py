"""
Local accounts: API keys, users and teams with OWNER/ADMIN/MEMBER roles.

The configuration is a small JSON document (see `Accounts.from_dict`); without one the
emulator knows a single demo user whose key is `DEMO_API_KEY`, owner of one demo team.
"""

from __future__ import annotations

import enum
import json
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final, Literal

from attrs import evolve, field, frozen

DEMO_API_KEY: Final = "rg-demo-key"
DEMO_USER_NAME: Final = "demo"
DEMO_TEAM_NAME: Final = "demo-team"

# Ids derived from names stay the same across restarts, so a config file can omit them.
_NAMESPACE: Final = uuid.UUID("6f1d1c52-3c7e-4b8e-9a51-2d0b8f3e7c11")

Action = Literal["read", "create", "edit", "delete"]


def _strings(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(values)


class Role(enum.StrEnum):
    """A member's role in a team (`/api/working-with-teams`)."""

    OWNER = "OWNER"
    ADMIN = "ADMIN"
    MEMBER = "MEMBER"


def name_id(kind: str, name: str) -> str:
    """Return the stable UUID the emulator gives a user or team called *name*."""
    return str(uuid.uuid5(_NAMESPACE, f"{kind}:{name}"))


@frozen(kw_only=True)
class User:
    """A local user and the API keys that authenticate as them."""

    name: str
    api_keys: tuple[str, ...] = field(converter=_strings)
    id: str = field()

    @id.default
    def _default_id(self) -> str:
        return name_id("user", self.name)

    def __repr__(self) -> str:  # Never show the keys, not even in a traceback.
        return f"User(name={self.name!r}, id={self.id!r}, api_keys=<{len(self.api_keys)}>)"


@frozen(kw_only=True)
class Team:
    """A team, its members' roles, and what a plain MEMBER may do in it.

    The docs say members can "usually create and edit", subject to the team's settings;
    here those settings are *member_can_create* and *member_can_edit* (both on by default)
    and *member_can_delete* (off).
    """

    name: str
    members: Mapping[str, Role]
    id: str = field()
    member_can_create: bool = True
    member_can_edit: bool = True
    member_can_delete: bool = False

    @id.default
    def _default_id(self) -> str:
        return name_id("team", self.name)

    def allows(self, role: Role, action: Action) -> bool:
        """Whether a member with *role* may perform *action* on the team's resources."""
        if role is not Role.MEMBER or action == "read":
            return True
        return {
            "create": self.member_can_create,
            "edit": self.member_can_edit,
            "delete": self.member_can_delete,
        }[action]


class Accounts:
    """The users and teams the emulator knows, looked up by API key and team id."""

    def __init__(self, users: list[User], teams: list[Team]) -> None:
        self.users = {user.id: user for user in users}
        self.teams = {team.id: team for team in teams}
        self._by_key = {key: user for user in users for key in user.api_keys}
        if len(self._by_key) != sum(len(user.api_keys) for user in users):
            raise ValueError("an API key is given to more than one user")

    def __repr__(self) -> str:
        return f"Accounts(users={len(self.users)}, teams={len(self.teams)})"

    def authenticate(self, api_key: str | None) -> User | None:
        """Return the user *api_key* belongs to, or `None`."""
        return self._by_key.get(api_key) if api_key else None

    def role_of(self, user: User, team_id: str) -> Role | None:
        """Return *user*'s role in team *team_id*, or `None` if not a member (or no team)."""
        team = self.teams.get(team_id)
        return None if team is None else team.members.get(user.id)

    def user_named(self, name: str) -> User:
        """Return the user called *name*; raise `KeyError` if there is none."""
        for user in self.users.values():
            if user.name == name:
                return user
        raise KeyError(name)

    def team_named(self, name: str) -> Team:
        """Return the team called *name*; raise `KeyError` if there is none."""
        for team in self.teams.values():
            if team.name == name:
                return team
        raise KeyError(name)

    @classmethod
    def demo(cls, api_key: str = DEMO_API_KEY) -> Accounts:
        """One user ``demo`` with *api_key*, OWNER of team ``demo-team``."""
        return cls.from_dict({}, demo_api_key=api_key)

    @classmethod
    def from_file(cls, path: str | Path) -> Accounts:
        """Read a JSON config file (format: `from_dict`)."""
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    @classmethod
    def from_dict(cls, config: Mapping[str, Any], *, demo_api_key: str = DEMO_API_KEY) -> Accounts:
        """Build accounts from a config mapping.

        The format::

            {"users": [{"name": "alice", "api_key": "rg-alice"},
                       {"name": "bob", "api_keys": ["rg-bob", "rg-bob-2"], "id": "..."}],
             "teams": [{"name": "acme", "members": {"alice": "OWNER", "bob": "MEMBER"},
                        "member_can_delete": false}],
             "demo": true}

        Members are named by user name or id. ``"demo": false`` leaves out the demo user
        and team, which are otherwise always there.

        Raises:
            ValueError: The config is malformed.
        """
        try:
            users = [_user(entry) for entry in config.get("users", [])]
            if config.get("demo", True):
                users.insert(0, User(name=DEMO_USER_NAME, api_keys=(demo_api_key,)))
            ids = {user.name: user.id for user in users} | {user.id: user.id for user in users}
            teams = [_team(entry, ids) for entry in config.get("teams", [])]
            if config.get("demo", True):
                demo_id = ids[DEMO_USER_NAME]
                teams.insert(0, Team(name=DEMO_TEAM_NAME, members={demo_id: Role.OWNER}))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"invalid emulator accounts config: {exc!r}") from exc
        return cls(users, teams)


def _user(entry: Mapping[str, Any]) -> User:
    keys = entry.get("api_keys") or [entry["api_key"]]
    if "id" in entry:
        return User(name=entry["name"], api_keys=tuple(keys), id=str(entry["id"]))
    return User(name=entry["name"], api_keys=tuple(keys))


def _team(entry: Mapping[str, Any], user_ids: Mapping[str, str]) -> Team:
    members = {user_ids[who]: Role(role) for who, role in entry.get("members", {}).items()}
    team = Team(
        name=entry["name"],
        members=members,
        member_can_create=bool(entry.get("member_can_create", True)),
        member_can_edit=bool(entry.get("member_can_edit", True)),
        member_can_delete=bool(entry.get("member_can_delete", False)),
    )
    return evolve(team, id=str(entry["id"])) if "id" in entry else team
