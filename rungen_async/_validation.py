"""
Checks on the caller's arguments, run before anything is sent.

Each failure is a `ValueError` or `TypeError` whose message names the argument and says
what to fix. None of them ever echoes the API key.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final
from urllib.parse import urlsplit

from ._exceptions import InvalidInputError
from ._models import GpuTier, Lora

# Ids are opaque, but they are path segments: nothing that could move the URL elsewhere.
_ID_PATTERN: Final = re.compile(r"[A-Za-z0-9._~:@+=,-]+")
_LORA_FIELDS: Final = ("id", "versionId", "downloadUrl", "name", "weight")
_LORA_ALIASES: Final = {"version_id": "versionId", "download_url": "downloadUrl"}


def check_id(name: str, value: object) -> str:
    """Return *value* if it is a usable id for argument *name*, else raise."""
    if type(value) is str and _ID_PATTERN.fullmatch(value) and value not in (".", ".."):
        return value
    if not isinstance(value, str):
        raise InvalidInputError(f"{name} must be a string id, got {type(value).__name__}")
    if not value:
        raise InvalidInputError(f"{name} is empty: pass the id the API returned")
    raise InvalidInputError(
        f"{name} {value!r} is not a valid id: ids may contain only letters, digits and "
        "'._~:@+=,-', and may not be '.' or '..' (a '/' or '..' would change the URL path)"
    )


_HEADER_VALUE: Final = re.compile(r"[\x21-\x7e]+")


def check_header_value(name: str, value: object) -> str:
    """Return *value* if it can be sent as an HTTP header value (visible ASCII), else raise."""
    if type(value) is str and len(value) <= 1024 and _HEADER_VALUE.fullmatch(value):
        return value
    if not isinstance(value, str):
        raise InvalidInputError(f"{name} must be a string, got {type(value).__name__}")
    if not value:
        raise InvalidInputError(f"{name} is empty")
    raise InvalidInputError(
        f"{name} must be at most 1024 visible ASCII characters (no spaces, line breaks or "
        "control characters): it is sent as an HTTP header"
    )


def check_text(name: str, value: object, *, allow_empty: bool = False) -> str:
    """Return the string *value* of argument *name*, refusing blanks unless allowed."""
    if not isinstance(value, str):
        raise InvalidInputError(f"{name} must be a string, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise InvalidInputError(f"{name} is empty: give it a non-blank value")
    return value


def check_gpu_tier(value: object) -> str:
    """Return the wire value of a GPU tier, refusing tiers the API does not list."""
    known = [tier.value for tier in GpuTier]
    if isinstance(value, str) and value.upper() in known:
        return value.upper()
    raise InvalidInputError(f"gpu_tier {value!r} is not a GPU tier: use one of {', '.join(known)}")


def check_workers(name: str, value: object, *, minimum: int) -> int:
    """Return a worker count >= *minimum*, refusing bools, floats and strings."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"{name} must be a whole number, got {value!r}")
    if value < minimum:
        raise InvalidInputError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_model_url(value: object) -> str:
    """Return a model URL, refusing blanks and strings with white space."""
    url = check_text("model_url", value)
    if any(char.isspace() for char in url):
        raise InvalidInputError(f"model_url {url!r} contains white space: pass the model's URL")
    return url


def _lora_to_wire(index: int, lora: Lora | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(lora, Lora):
        item: dict[str, Any] = {
            "id": lora.id,
            "versionId": lora.version_id,
            "downloadUrl": lora.download_url,
            "name": lora.name,
            "weight": lora.weight,
        }
    elif isinstance(lora, Mapping):
        item = {_LORA_ALIASES.get(key, key): value for key, value in lora.items()}
    else:
        raise InvalidInputError(
            f"loras[{index}] must be a Lora or a mapping, got {type(lora).__name__}"
        )
    missing = [key for key in _LORA_FIELDS if item.get(key) in (None, "")]
    if missing:
        raise InvalidInputError(
            f"loras[{index}] lacks {', '.join(missing)}: the API needs all of "
            f"{', '.join(_LORA_FIELDS)} for every LoRA (also to change a weight)"
        )
    weight = item["weight"]
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not math.isfinite(weight):
        raise InvalidInputError(f"loras[{index}].weight must be a finite number, got {weight!r}")
    for key in ("id", "versionId", "downloadUrl", "name"):
        if isinstance(item[key], int) and not isinstance(item[key], bool):
            item[key] = str(item[key])  # Civitai ids are digits; the API wants strings
        check_text(f"loras[{index}].{key}", item[key])
    return {key: item[key] for key in _LORA_FIELDS} | {"weight": float(weight)}


def loras_to_wire(loras: Iterable[Lora | Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Check every LoRA and return their wire form (camelCase ``versionId``/``downloadUrl``)."""
    if isinstance(loras, str | bytes | Mapping):
        raise InvalidInputError("loras must be a list of Lora objects or mappings")
    return [_lora_to_wire(index, lora) for index, lora in enumerate(loras)]


def encode_json(name: str, body: Mapping[str, Any]) -> bytes:
    """Serialise a request body, saying which argument is not JSON-serialisable."""
    try:
        return json.dumps(body, allow_nan=False, separators=(",", ":")).encode()
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{name} is not JSON-serialisable: {exc}") from exc


def encode_job_input(value: object) -> bytes:
    """Return the run_async body for a job input, which must be a JSON object."""
    if not isinstance(value, Mapping):
        raise InvalidInputError(
            f"input must be a JSON object (a dict of the model's parameters), "
            f"got {type(value).__name__}"
        )
    return encode_json("input", {"input": value})


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_base_url(url: object, *, allow_insecure_http: bool) -> str:
    """Return *url* without a trailing slash, refusing plain http except to loopback."""
    text = check_text("base_url", url)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInputError(
            f"base_url {text!r} must be an http(s) URL such as https://api.rungen.ai"
        )
    if parts.query or parts.fragment:
        raise InvalidInputError(f"base_url {text!r} must not have a query or fragment")
    if parts.scheme == "http" and not allow_insecure_http and not _is_loopback(parts.hostname):
        raise InvalidInputError(
            f"base_url {text!r} is plain http: the API key would travel unencrypted. Use "
            "https, a loopback host, or pass allow_insecure_http=True if you really mean it"
        )
    return text.rstrip("/")


def check_api_key(value: object, env_name: str) -> str:
    """Return a usable API key; the messages never include the key itself."""
    if value is None or value == "":
        raise InvalidInputError(
            f"No API key: pass api_key=... or set the {env_name} environment variable"
        )
    if not isinstance(value, str):
        raise InvalidInputError(f"api_key must be a string, got {type(value).__name__}")
    if value != value.strip() or any(ord(char) < 32 or char.isspace() for char in value):
        raise InvalidInputError(
            "api_key contains white space or control characters: check how it was read"
        )
    return value
