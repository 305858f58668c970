"""
Short text reprs and notebook HTML for the models.

Nothing here fetches anything: images are ``<img>`` tags pointing at the result URLs, which
the notebook's browser loads. Every URL and text is HTML-escaped. The batch's ``Outcome``
and ``BatchResult`` reuse `job_html` and `images_html`.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from ._batch._outcomes import BatchResult, Outcome
    from ._models import App, Job

_STATUS_COLOURS = {
    "COMPLETED": "#1a7f37",
    "FAILED": "#cf222e",
    "REJECTED": "#cf222e",
    "CANCELED": "#6e7781",
}
THUMBNAIL_PX = 128


def _short(text: str | None, limit: int = 40) -> str:
    if text is None:
        return "None"
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def app_repr(app: App) -> str:
    """One line: id, name, status, tier and workers (never a key; the model holds none)."""
    status = app.status.value if app.status is not None else None
    tier = app.configuration.gpu_tier
    parts = [
        f"id={app.id!r}",
        f"name={_short(app.name)!r}",
        f"status={status}",
        f"gpu_tier={tier.value if tier is not None else None}",
        f"active_workers={app.configuration.active_workers}",
    ]
    return f"<App {' '.join(parts)}>"


def job_repr(job: Job) -> str:
    """One line: id, status, execution time and how many images the result holds."""
    parts = [f"id={job.id!r}", f"status={job.status.value}"]
    if job.execution_time is not None:
        parts.append(f"execution_time={job.execution_time:g}")
    urls = job.image_urls
    if urls:
        parts.append(f"images={len(urls)}")
    if job.error:
        parts.append(f"error={_short(job.error)!r}")
    return f"<Job {' '.join(parts)}>"


def _safe_src(url: str) -> str | None:
    # Only web URLs become <img src>: a hostile result must not inject javascript: or data:.
    scheme = urlsplit(url).scheme.lower()
    return html.escape(url, quote=True) if scheme in ("http", "https") else None


def images_html(urls: Iterable[str], *, size: int = THUMBNAIL_PX) -> str:
    """
    Thumbnails of *urls* as escaped ``<img>`` tags, each linking to the full image.

    Only http(s) URLs are shown; anything else is listed as escaped text.
    """
    tags: list[str] = []
    for url in urls:
        src = _safe_src(url)
        if src is None:
            tags.append(f"<code>{html.escape(url)}</code>")
            continue
        tags.append(
            f'<a href="{src}" target="_blank" rel="noopener">'
            f'<img src="{src}" loading="lazy" alt="output image" '
            f'style="max-width:{size}px;max-height:{size}px;margin:2px"></a>'
        )
    return "".join(tags)


def job_html(job: Job) -> str:
    """A small HTML card for *job*: status, timings, error and its output images inline."""
    status = job.status.value
    colour = _STATUS_COLOURS.get(status, "#9a6700")
    rows = [("id", job.id), ("app", job.app_id)]
    if job.created_at is not None:
        rows.append(("created", job.created_at.isoformat(sep=" ", timespec="seconds")))
    if job.execution_time is not None:
        rows.append(("execution time", f"{job.execution_time:g}"))
    if job.error:
        rows.append(("error", job.error))
    cells = "".join(
        f"<tr><th style='text-align:left;padding-right:8px'>{html.escape(name)}</th>"
        f"<td>{html.escape(str(value))}</td></tr>"
        for name, value in rows
        if value is not None
    )
    return (
        "<div class='rungen-job'>"
        f"<b>Job</b> <span style='color:{colour};font-weight:bold'>{html.escape(status)}</span>"
        f"<table>{cells}</table>"
        f"<div>{images_html(job.image_urls)}</div>"
        "</div>"
    )


def outcome_html(outcome: Outcome) -> str:
    """An HTML card for one batch outcome: its kind, its error, and its job's card."""
    colour = _STATUS_COLOURS.get(outcome.kind.value, "#9a6700")
    error = (
        ""
        if outcome.error is None
        else f"<div><code>{html.escape(_short(str(outcome.error), 300))}</code></div>"
    )
    job = "" if outcome.job is None else job_html(outcome.job)
    return (
        "<div class='rungen-outcome'>"
        f"<b>Outcome #{outcome.index}</b> "
        f"<span style='color:{colour};font-weight:bold'>{html.escape(outcome.kind.value)}</span>"
        f"{' (resumed)' if outcome.resumed else ''}{error}{job}</div>"
    )


def batch_html(result: BatchResult, *, images: int = 24) -> str:
    """A summary of a batch: counts per kind, the first failures, and up to *images* images."""
    counts: dict[str, int] = {}
    for outcome in result.outcomes:
        counts[outcome.kind.value] = counts.get(outcome.kind.value, 0) + 1
    summary = ", ".join(f"{count} {html.escape(kind)}" for kind, count in sorted(counts.items()))
    urls = [url for job in result.jobs for url in job.image_urls][:images]
    failures = "".join(
        f"<li>#{o.index} {html.escape(o.kind.value)}: "
        f"{html.escape(_short(str(o.error), 200)) if o.error else ''}</li>"
        for o in result.failures[:10]
    )
    return (
        "<div class='rungen-batch'>"
        f"<b>Batch</b>: {len(result.outcomes)} outcomes ({summary or 'none'}), "
        f"{result.stats.elapsed:.1f} s"
        f"{f'<ul>{failures}</ul>' if failures else ''}"
        f"<div>{images_html(urls)}</div></div>"
    )
