"""What a type checker tells a user of the SDK: misspelt options fail, enums are accepted."""

from __future__ import annotations

import os
from pathlib import Path

from mypy import api as mypy_api

USER_CODE = """
from rungen_async import AsyncRunGen, GpuTier


async def main(rg: AsyncRunGen) -> None:
    app = await rg.create_app("a", gpu_tier=GpuTier.STANDARD, model_url="https://m")
    await rg.create_app("b", gpu_tier="STANDARD", model_url="https://m")
    await rg.run_batch(app.id, [{"prompt": "x"}], max_concurrency=4, max_poll_rate=500.0)
    await rg.run_batch(app.id, [{"prompt": "x"}], max_concurency=4)  # line 9: a typo
    async with rg.batch(app.id, [], poll_rat=10) as batch:  # line 10: a typo
        print(batch.stats.poll_rate)
"""


def test_mypy_catches_misspelt_batch_options_and_accepts_gpu_tier_enums(tmp_path: Path) -> None:
    source = tmp_path / "user_code.py"
    source.write_text(USER_CODE, encoding="utf-8")

    out, _, status = mypy_api.run(
        ["--strict", "--no-incremental", "--config-file", os.devnull, str(source)]
    )

    errors = [line for line in out.splitlines() if ": error:" in line]
    assert status == 1
    assert len(errors) == 2, out
    assert 'user_code.py:9: error: Unexpected keyword argument "max_concurency"' in errors[0]
    assert 'user_code.py:10: error: Unexpected keyword argument "poll_rat"' in errors[1]
