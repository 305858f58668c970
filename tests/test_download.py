"""`AsyncRunGen.download`: outputs streamed to files, never with the key, safe names."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import anyio
import pytest

from rungen_async import AsyncRunGen, DownloadError, Job, JobStatus
from rungen_async.emulator import Emulator, EmulatorServer
from rungen_async.emulator._accounts import DEMO_API_KEY

BODY = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 1024  # 256 KiB: several chunks


class OutputHost:
    """A storage host on 127.0.0.1 that serves BODY and records every request's headers."""

    def __init__(self) -> None:
        seen: list[dict[str, str]] = []
        self.seen = seen

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append({k.lower(): v for k, v in self.headers.items()})
                if self.path.startswith("/missing"):
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(BODY)))
                self.end_headers()
                self.wfile.write(BODY)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture(scope="module")
def output_host() -> Iterator[OutputHost]:
    host = OutputHost()
    thread = threading.Thread(target=host.server.serve_forever, daemon=True)
    thread.start()
    yield host
    host.server.shutdown()
    host.server.server_close()
    thread.join()


@pytest.fixture(scope="module")
def api() -> Iterator[EmulatorServer]:
    with EmulatorServer(Emulator(warmup=0, job_duration=0, seed=5)) as running:
        yield running


def finished(*urls: str) -> Job:
    return Job(
        id="job-1",
        status=JobStatus.COMPLETED,
        app_id="app-1",
        result={"images": [{"image": url} for url in urls]},
    )


async def test_download_never_sends_the_key_to_the_output_host(
    api: EmulatorServer, output_host: OutputHost, tmp_path: Path
) -> None:
    """The storage host sees neither x-api-key nor x-team-id; the files are complete."""
    job = finished(f"{output_host.url}/out/a.png?sig=1", f"{output_host.url}/out/b.png")
    async with AsyncRunGen(DEMO_API_KEY, base_url=api.base_url, team_id="team-x") as rg:
        paths = await rg.download(job, tmp_path / "out")

    assert paths == [tmp_path / "out" / "job-1-0.png", tmp_path / "out" / "job-1-1.png"]
    assert [path.read_bytes() == BODY for path in paths] == [True, True]
    assert all("x-api-key" not in h and "x-team-id" not in h for h in output_host.seen)
    assert DEMO_API_KEY not in repr(output_host.seen)


async def test_download_names_cannot_escape_the_folder(
    output_host: OutputHost, tmp_path: Path
) -> None:
    """A hostile URL path (traversal, odd suffix) still lands inside the folder."""
    job = Job(
        id="../../evil",
        status=JobStatus.COMPLETED,
        result={"images": [{"image": f"{output_host.url}/x/..%2F..%2Fpasswd.sh;rm"}]},
    )
    async with AsyncRunGen("k", base_url="http://127.0.0.1:9") as rg:
        [path] = await rg.download(job, tmp_path)

    assert path.parent == tmp_path
    assert path.name == "______evil-0.bin"
    assert path.read_bytes() == BODY


async def test_download_errors_are_clear(output_host: OutputHost, tmp_path: Path) -> None:
    """An unfinished job and a 404 raise DownloadError naming the problem; no partial file."""
    async with AsyncRunGen("k", base_url="http://127.0.0.1:9") as rg:
        with pytest.raises(DownloadError, match="RUNNING, not COMPLETED"):
            await rg.download(Job(id="j", status=JobStatus.RUNNING), tmp_path)
        with pytest.raises(DownloadError, match="answered 404"):
            await rg.download(finished(f"{output_host.url}/missing.png"), tmp_path)

    assert [p async for p in anyio.Path(tmp_path).iterdir()] == []


async def test_download_saves_an_emulator_job(api: EmulatorServer, tmp_path: Path) -> None:
    """End to end: run a job on the emulator, download its image, get a PNG file."""
    async with AsyncRunGen(DEMO_API_KEY, base_url=api.base_url) as rg:
        app = await rg.create_app("d", gpu_tier="STANDARD", model_url="https://huggingface.co/a/b")
        await rg.start_app(app.id)
        await rg.wait_for_app(app.id)
        job = await rg.run(app.id, {"prompt": "a lighthouse"})
        [path] = await rg.download(job, tmp_path)

    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
