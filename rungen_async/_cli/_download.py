"""
Saving a finished job's output files.

Output URLs point at storage, not at the API, so they are fetched with a plain httpx client
that never carries the API key (`Session.download_client`). Failures are retried a few times
and then reported per item; they never stop the batch.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import anyio
import httpx

from .._clock import Clock
from .._models import Job

ATTEMPTS = 3
_RETRY_DELAY = 0.5
_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif", ".mp4", ".json"})


class DownloadError(Exception):
    """An output file could not be fetched or saved."""


def _suffix(url: str, content_type: str | None) -> str:
    suffix = PurePosixPath(urlsplit(url).path).suffix.lower()
    if suffix in _SUFFIXES:
        return suffix
    if content_type:
        guessed = mimetypes.guess_extension(content_type.split(";")[0].strip())
        if guessed:
            return guessed
    return ".bin"


def _save(path: Path, content: bytes) -> None:
    # Write to a temporary name first: a crash never leaves a truncated image behind.
    partial = path.with_name(path.name + ".part")
    partial.write_bytes(content)
    partial.replace(path)


class Downloader:
    """
    Fetches jobs' output files into *directory*, named ``<index>-<job id>.<ext>``.

    Args:
        width: Digits of the zero-padded index, so the files sort in input order.
        limit: Downloads at once.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        directory: Path,
        *,
        clock: Clock,
        width: int,
        limit: int = 8,
    ) -> None:
        self.client = client
        self.directory = directory
        self.clock = clock
        self.width = width
        self.limiter = anyio.CapacityLimiter(limit)
        self.files = 0
        self.bytes = 0

    def prepare(self) -> None:
        """Create the directory."""
        self.directory.mkdir(parents=True, exist_ok=True)

    async def fetch(self, index: int, job: Job) -> list[str]:
        """
        Download every output URL of *job*; return the paths written.

        Raises:
            DownloadError: A file could not be fetched or written.
        """
        urls = job.image_urls
        paths: list[str] = []
        for number, url in enumerate(urls, start=1):
            async with self.limiter:
                content, content_type = await self._get(url)
            stem = f"{index:0{self.width}d}-{job.id}"
            if len(urls) > 1:
                stem += f"-{number}"
            path = self.directory / (stem + _suffix(url, content_type))
            try:
                _save(path, content)
            except OSError as exc:
                raise DownloadError(f"cannot write {path}: {exc.strerror or exc}") from None
            self.files += 1
            self.bytes += len(content)
            paths.append(str(path))
        return paths

    async def _get(self, url: str) -> tuple[bytes, str | None]:
        problem = ""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                response = await self.client.get(url)
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.is_success:
                    return response.content, response.headers.get("content-type")
                problem = f"HTTP {response.status_code}"
                if response.status_code < 500 and response.status_code not in (408, 429):
                    break
            if attempt < ATTEMPTS:
                await self.clock.sleep(_RETRY_DELAY * attempt)
        raise DownloadError(f"cannot download {url}: {problem}")
