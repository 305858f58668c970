"""
Progress bars for batches: a notebook widget in Jupyter, a terminal bar anywhere else.

    from rungen_async.progress import tqdm_progress

    with tqdm_progress(total=len(inputs)) as progress:
        result = await rg.run_batch(app_id, inputs, on_progress=progress)

`tqdm_progress` is a batch's *on_progress* callback drawn by ``tqdm.auto``, which picks the
ipywidgets bar inside a Jupyter kernel and the text bar elsewhere. It needs tqdm, the
``progress`` extra: ``pip install 'rungen-async[progress]'``.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, NoReturn, Self, TextIO

from ._batch._outcomes import BatchStats

if TYPE_CHECKING:
    from tqdm.asyncio import tqdm_asyncio

__all__ = ["TqdmProgress", "tqdm_progress"]

INSTALL_HINT = "pip install 'rungen-async[progress]'"
#: tqdm's own layout with the counts moved before the times: on a narrow terminal tqdm
#: trims from the end, so the counts are the last to go.
BAR_FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt}{postfix} [{elapsed}<{remaining}, {rate_fmt}]"


def _open_bar(
    total: int | None, desc: str | None, leave: bool, file: TextIO | None, ncols: int | None
) -> tqdm_asyncio[NoReturn]:
    try:
        from tqdm.auto import tqdm
    except ImportError:
        raise ImportError(
            f"rungen_async.progress draws its bars with tqdm, which is not installed: "
            f"{INSTALL_HINT}"
        ) from None
    return tqdm(
        total=total, desc=desc, leave=leave, file=file, ncols=ncols, unit=" jobs",
        smoothing=0, dynamic_ncols=file is None and ncols is None, bar_format=BAR_FORMAT,
    )  # fmt: skip


class TqdmProgress:
    """
    A batch's progress as a tqdm bar; pass it as *on_progress* to `AsyncRunGen.batch()`
    or `AsyncRunGen.run_batch()`.

    Each call (one per outcome) moves the bar to the batch's finished count and shows the
    completed, failed and in-flight counts beside it. The bar closes itself when *total*
    items are done; use it as a context manager (or call `close()`) so a batch that stops
    early closes it too.
    """

    def __init__(
        self,
        total: int | None = None,
        *,
        desc: str | None = None,
        leave: bool = True,
        file: TextIO | None = None,
        ncols: int | None = None,
    ) -> None:
        """
        Open the bar.

        Args:
            total: How many inputs the batch has (without it: no percentage or ETA).
            desc: A label in front of the bar.
            leave: Keep the finished bar on screen.
            file: Where a text bar is written (default: stderr).
            ncols: The text bar's width (default: the terminal's).

        Raises:
            ImportError: tqdm is not installed; the message says what to install.
        """
        self.total = total
        self.bar = _open_bar(total, desc, leave, file, ncols)
        #: The last statistics shown.
        self.stats: BatchStats | None = None

    def __call__(self, stats: BatchStats, /) -> None:
        """Show *stats* (the batch calls this after each outcome)."""
        self.stats = stats
        failed = stats.done - stats.completed
        self.bar.set_postfix_str(
            f"ok {stats.completed}, failed {failed}, in flight {stats.in_flight}", refresh=False
        )
        self.bar.update(stats.done - self.bar.n)
        if self.total is not None and stats.done >= self.total:
            self.close()

    def close(self) -> None:
        """Draw the last state and close the bar (harmless when already closed)."""
        self.bar.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def tqdm_progress(
    total: int | None = None,
    *,
    desc: str | None = None,
    leave: bool = True,
    file: TextIO | None = None,
    ncols: int | None = None,
) -> TqdmProgress:
    """
    A progress bar for a batch: a notebook widget in Jupyter, a terminal bar elsewhere.

    Pass it as *on_progress*; the arguments are `TqdmProgress`'s.

    Raises:
        ImportError: tqdm is not installed (``pip install 'rungen-async[progress]'``).
    """
    return TqdmProgress(total, desc=desc, leave=leave, file=file, ncols=ncols)
