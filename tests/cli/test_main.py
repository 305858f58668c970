"""The command line as a whole: usage errors, help, configuration, exit codes, secrets."""

from __future__ import annotations

import httpx
import pytest

from rungen_async._cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main
from rungen_async.testing import FakeRunGen

from .conftest import SECRET_KEY, Cli


async def test_no_command_is_a_usage_error(cli: Cli) -> None:
    """rungen alone exits 2 with the usage line."""
    result = await cli()

    assert result.code == EXIT_USAGE
    assert "usage: rungen" in result.stderr


async def test_unknown_flag_is_a_usage_error(cli: Cli) -> None:
    """An unknown flag exits 2 and names it."""
    result = await cli("apps", "list", "--frobnicate")

    assert result.code == EXIT_USAGE
    assert "--frobnicate" in result.stderr


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["--help"], id="top"),
        pytest.param(["batch", "--help"], id="batch"),
        pytest.param(["apps", "create", "--help"], id="apps-create"),
    ],
)
async def test_help_goes_to_stdout_and_exits_0(cli: Cli, argv: list[str]) -> None:
    """--help prints to the run's stdout and exits 0."""
    result = await cli(*argv)

    assert result.code == EXIT_OK
    assert result.stdout.startswith("usage: rungen")


async def test_help_documents_exit_codes(cli: Cli) -> None:
    """rungen --help lists the exit statuses."""
    result = await cli("--help")

    assert "130 interrupted" in result.stdout
    for command in ("apps", "jobs", "batch", "emulator", "demo"):
        assert command in result.stdout


async def test_version(cli: Cli) -> None:
    """--version prints the package version."""
    from rungen_async import __version__

    result = await cli("--version")

    assert (result.code, result.stdout.strip()) == (EXIT_OK, f"rungen {__version__}")


async def test_missing_api_key_names_the_variable(cli: Cli, fake: FakeRunGen) -> None:
    """Without a key the command exits 2 and says how to give one."""
    result = await cli("apps", "list", env_override={"RUNGEN_BASE_URL": fake.base_url})

    assert result.code == EXIT_USAGE
    assert "RUNGEN_API_KEY" in result.stderr
    assert "--api-key" in result.stderr


async def test_flags_override_the_environment(cli: Cli, fake: FakeRunGen) -> None:
    """--api-key and --base-url win over the environment (which here is wrong)."""
    fake.create_app("mine")
    env = {"RUNGEN_API_KEY": "rg-wrong", "RUNGEN_BASE_URL": "https://elsewhere.test"}

    result = await cli(
        "apps", "list", "--api-key", SECRET_KEY, "--base-url", fake.base_url,
        env_override=env,
    )  # fmt: skip

    assert result.code == EXIT_OK
    assert "mine" in result.stdout


async def test_insecure_base_url_is_refused(cli: Cli) -> None:
    """A plain-http URL to a remote host is a usage error: the key would travel in clear."""
    result = await cli("apps", "list", "--base-url", "http://api.example.com")

    assert result.code == EXIT_USAGE
    assert "http" in result.stderr


async def test_wrong_key_is_never_printed(cli: Cli, fake: FakeRunGen) -> None:
    """A rejected key shows in neither stream, given by flag or environment."""
    wrong = "rg-wrong-key-5a5a5a5a5a5a"
    env = {"RUNGEN_API_KEY": wrong, "RUNGEN_BASE_URL": fake.base_url}

    by_env = await cli("apps", "list", env_override=env)
    by_flag = await cli("apps", "get", "x", "--api-key", wrong, "--json", env_override=env)

    for result in (by_env, by_flag):
        assert result.code == EXIT_FAILED
        assert "403" in result.stderr
        assert wrong not in result.output


class _LeakyTransport(httpx.AsyncBaseTransport):
    """Fails with a message that quotes the request's API key, like a careless proxy."""

    def __init__(self, error: type[Exception]) -> None:
        self.error = error

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise self.error(f"refused key {request.headers['x-api-key']}")


@pytest.mark.parametrize("error", [ValueError, RuntimeError, httpx.ConnectError])
async def test_key_is_masked_even_in_unexpected_errors(cli: Cli, error: type[Exception]) -> None:
    """An error quoting the key is printed with the key masked, whatever its type."""
    result = await cli("apps", "list", runtime_args={"transport": _LeakyTransport(error)})

    assert result.code in (EXIT_FAILED, EXIT_USAGE)
    assert "refused key ***" in result.stderr


def test_main_is_the_console_script(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """main() runs its own event loop and returns the exit status."""
    monkeypatch.delenv("RUNGEN_API_KEY", raising=False)

    code = main(["apps", "list"])

    assert code == EXIT_USAGE
    assert "RUNGEN_API_KEY" in capsys.readouterr().err


def test_main_version(capsys: pytest.CaptureFixture[str]) -> None:
    """main(["--version"]) prints to the process's stdout."""
    assert main(["--version"]) == EXIT_OK
    assert capsys.readouterr().out.startswith("rungen ")
