"""The public surface: what `import rungen_async` offers, sorted and documented."""

from __future__ import annotations

import inspect

import rungen_async


def test_all_is_sorted_and_complete() -> None:
    """__all__ lists every public name, sorted."""
    public = sorted(
        name
        for name, value in vars(rungen_async).items()
        if not name.startswith("_") and name != "annotations" and not inspect.ismodule(value)
    )

    assert rungen_async.__all__ == sorted(rungen_async.__all__)
    assert set(rungen_async.__all__) - {"__version__"} == set(public)


def test_every_public_name_is_documented() -> None:
    """Each exported class and its public methods have docstrings."""
    undocumented = []
    for name in rungen_async.__all__:
        obj = getattr(rungen_async, name)
        if not inspect.isclass(obj):
            continue
        if not (obj.__doc__ or "").strip():
            undocumented.append(name)
        for attr, member in vars(obj).items():
            if attr.startswith("_") or not callable(member):
                continue
            if not (getattr(member, "__doc__", "") or "").strip():
                undocumented.append(f"{name}.{attr}")

    assert undocumented == []
