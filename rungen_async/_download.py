"""
`AsyncRunGen.download`: stream a finished job's output files to a folder.

Output URLs point at storage, not at the API, so they are fetched with a fresh httpx client
that carries no API key and no team header, whatever host a (possibly hostile) result names.
File names are made here (``<job id>-<n><suffix>``), never taken from the URL, so a URL cannot
write outside the folder.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import anyio
import httpx

from ._exceptions import RunGenError
from ._models import Job

CHUNK_BYTES = 64 * 1024
READ_TIMEOUT = 60.0  # per read; bound a whole download with anyio.fail_after
_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,5}")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


class DownloadError(RunGenError):
    """An output file could not be fetched or saved; the message names the URL's host."""


def output_path(folder: Path, job: Job, index: int, url: str) -> Path:
    """Where output *index* of *job* is saved: a name made from the job id, inside *folder*."""
    suffix = PurePosixPath(urlsplit(url).path).suffix
    suffix = suffix.lower() if _SUFFIX.fullmatch(suffix) else ".bin"
    stem = _UNSAFE.sub("_", job.id)[:64] or "job"
    return folder / f"{stem}-{index}{suffix}"


async def download(job: Job, folder: str | Path) -> list[Path]:
    """Stream every output URL of *job* to *folder*; see `AsyncRunGen.download`."""
    urls = job.image_urls
    if not job.status.is_success:
        raise DownloadError(f"job {job.id!r} is {job.status.value}, not COMPLETED: nothing to save")
    target = Path(folder)
    await anyio.Path(target).mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    # No auth: a bare client, so neither x-api-key nor x-team-id can reach the storage host.
    async with httpx.AsyncClient(timeout=READ_TIMEOUT, follow_redirects=True) as http:
        for index, url in enumerate(urls):
            scheme = urlsplit(url).scheme.lower()
            if scheme not in ("http", "https"):
                raise DownloadError(f"output {index} of job {job.id!r} is not a web URL")
            path = output_path(target, job, index, url)
            await _fetch(http, url, path)
            paths.append(path)
    return paths


async def _fetch(http: httpx.AsyncClient, url: str, path: Path) -> None:
    host = urlsplit(url).hostname
    partial = path.with_name(path.name + ".part")
    try:
        async with http.stream("GET", url) as response:
            if response.status_code != 200:
                raise DownloadError(f"{host} answered {response.status_code} for an output file")
            async with await anyio.open_file(partial, "wb") as out:
                async for chunk in response.aiter_bytes(CHUNK_BYTES):
                    await out.write(chunk)
    except httpx.HTTPError as exc:
        await anyio.Path(partial).unlink(missing_ok=True)
        raise DownloadError(f"cannot download an output file from {host}: {exc}") from exc
    except BaseException:
        await anyio.Path(partial).unlink(missing_ok=True)
        raise
    await anyio.Path(partial).replace(path)  # a complete file or none
