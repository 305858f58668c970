"""
Every ```python block of README.md works when pasted.

Each block is written to a file and run as its own program (a subprocess) against a real
emulator served by uvicorn on 127.0.0.1, with ``RUNGEN_API_KEY``, ``RUNGEN_BASE_URL`` and
``RUNGEN_USER_ID`` set and jobs that take no time; it must exit 0, and where it prints
something meaningful the output is checked. All blocks are also type-checked together with
``mypy --strict``.

Convention: a block that cannot run as a plain program gets an HTML comment on the line right
before its fence, which this test honours:

* ``<!-- readme-test: pytest -->``: the block is a pytest test module; it is run with pytest.
* ``<!-- readme-test: recipe NAME -->``: the block is exercised by tests/test_recipes.py
  (for instance a FastAPI app); here it is only type-checked.
* ``<!-- readme-test: notebook -->``: notebook cells (top-level ``await``), split at lines
  starting ``# cell``. They run one by one in one namespace on one event loop, as a Jupyter
  kernel runs them (``ast.PyCF_ALLOW_TOP_LEVEL_AWAIT``, what IPython compiles with), and a
  cell ending in an expression has it rendered as a notebook would (``_repr_html_``). They
  are type-checked with mypy's ``top-level-await`` check off.

Fragments that are not programs use a ```text fence, so they are neither run nor checked.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from mypy import api as mypy_api

from rungen_async.emulator import Emulator, EmulatorServer
from rungen_async.emulator._accounts import DEMO_API_KEY

README = Path(__file__).resolve().parent.parent / "README.md"
_BLOCK = re.compile(
    r"(?:<!-- readme-test: (?P<mark>[^>]*?) -->\n)?```python\n(?P<code>.*?)^```", re.S | re.M
)


def readme_blocks() -> list[tuple[int, str, str]]:
    """(line number, marker, code) of every python block of README.md."""
    text = README.read_text(encoding="utf-8")
    return [
        (text.count("\n", 0, match.start("code")) + 1, match["mark"] or "", match["code"])
        for match in _BLOCK.finditer(text)
    ]


BLOCKS = readme_blocks()
# What a block must print, found by a line of its code: checked where the output matters.
EXPECTED_OUTPUT = {
    "print(url)": re.compile(r"^https?://\S+$", re.M),  # the Quickstart's image URL
    'print(f"{result.stats.completed} completed")': re.compile(r"^20 completed$", re.M),
    'print(f"{len(apps)} apps")': re.compile(r"^\d+ apps$", re.M),
    'print(f"{len(results)} images")': re.compile(r"^3 images$", re.M),  # the trio script
}


#: Runs a notebook block (argv[1]) cell by cell, as a kernel does, printing each rendering.
NOTEBOOK_RUNNER = """
import ast, asyncio, re, sys

source = open(sys.argv[1], encoding="utf-8").read()
cells = [cell for cell in re.split(r"^# cell.*$", source, flags=re.M) if cell.strip()]
namespace = {"__name__": "__main__"}

async def kernel():
    for number, cell in enumerate(cells, 1):
        tree = ast.parse(cell, mode="exec")
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        for node, mode in ((tree, "exec"), (last and ast.Expression(last.value), "eval")):
            if node is None:
                continue
            value = eval(compile(node, f"<cell {number}>", mode, flags=flags), namespace)
            if asyncio.iscoroutine(value):
                value = await value
            if mode == "eval" and value is not None:  # shown as a notebook shows it
                render = getattr(value, "_repr_html_", None)
                if render is None:
                    print(f"cell {number} shows {value!r}")
                    continue
                html = render()
                print(f"cell {number} renders {type(value).__name__}: {len(html)} chars of HTML")
                print(html)

asyncio.run(kernel())
"""


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    with EmulatorServer(Emulator(warmup=0, job_duration=0, seed=3)) as running:
        yield running


def block_env(server: EmulatorServer) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        RUNGEN_API_KEY=DEMO_API_KEY,
        RUNGEN_BASE_URL=server.base_url,
        RUNGEN_USER_ID="demo",
    )
    env.pop("RUNGEN_TEAM_ID", None)
    return env


def test_readme_has_the_blocks_users_paste() -> None:
    """The Quickstart and the batch example are among the tested blocks."""
    codes = [code for _, _, code in BLOCKS]

    assert any("rg.run(app.id" in code and "print(url)" in code for code in codes)
    assert any("run_batch(" in code for code in codes)


@pytest.mark.parametrize(
    ("line", "mark", "code"), [pytest.param(*b, id=f"line-{b[0]}") for b in BLOCKS]
)
def test_readme_block_runs(
    line: int, mark: str, code: str, server: EmulatorServer, tmp_path: Path
) -> None:
    """The block runs to exit 0 against the emulator, printing what it promises."""
    if mark.startswith("recipe"):
        assert mark.split()[1:], f"line {line}: a recipe marker names its recipe"
        return  # run by tests/test_recipes.py
    source = tmp_path / f"readme_block_{line}.py"
    source.write_text(code, encoding="utf-8")
    command = [sys.executable, str(source)]
    if mark == "notebook":
        runner = tmp_path / "kernel.py"
        runner.write_text(NOTEBOOK_RUNNER, encoding="utf-8")
        command = [sys.executable, str(runner), str(source)]
    elif mark == "pytest":
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        command += ["-o", "anyio_mode=auto", str(source)]
    else:
        assert not mark, f"line {line}: unknown readme-test marker {mark!r}"

    done = subprocess.run(
        command, env=block_env(server), cwd=tmp_path, capture_output=True, text=True, timeout=120
    )

    assert done.returncode == 0, f"README line {line}:\n{done.stdout}\n{done.stderr}"
    for needle, pattern in EXPECTED_OUTPUT.items():
        if needle in code:
            assert pattern.search(done.stdout), f"README line {line} printed {done.stdout!r}"
    if mark == "notebook":
        # Each cell's closing value renders as HTML: the job card, the batch's counts.
        assert "cell 2 renders Job" in done.stdout
        assert "cell 3 renders BatchResult" in done.stdout
        assert done.stdout.count("<img") >= 2, done.stdout  # thumbnails of the outputs
        assert "8/8" in done.stderr  # the progress bar reached the end (text bar: no kernel)
        assert list((tmp_path / "outputs").iterdir())  # cell 4 saved the job's files


def test_readme_blocks_pass_mypy_strict(tmp_path: Path) -> None:
    """Every block type-checks with mypy --strict, as a user's own module would."""
    files = []
    for line, mark, code in BLOCKS:
        path = tmp_path / f"readme_block_{line}.py"
        if mark == "notebook":  # cells: top-level await is what they are made of
            code = '# mypy: disable-error-code="top-level-await"\n' + code
        path.write_text(code, encoding="utf-8")
        files.append(str(path))

    out, err, status = mypy_api.run(
        ["--strict", "--no-incremental", "--config-file", os.devnull, *files]
    )

    assert status == 0, out + err
