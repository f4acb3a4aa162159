"""Small helpers the report modules share: tolerant config lookups and one-line error text."""

from __future__ import annotations

from typing import Any

from hydra_plugins.navitune_shared.errors import message_line

from experiment.study import select


_select = select  # the sweep reader's tolerant lookup (experiment.study.select)



def _mean(xs: Any) -> float:
    values = list(xs)
    return sum(values) / len(values)



def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _yen(value: Any) -> str:
    """An amount of yen with thousands separators (``34,627``), not ``3.463e+04``."""
    return f"{value:,.0f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)



def _mask(storage: str | None) -> str | None:
    """A storage URL without its secrets (report files are shared)."""
    from hydra_plugins.navitune_shared.redact import redact

    return None if storage is None else redact(storage)


def _first_line(err: BaseException) -> str:
    return message_line(err) or type(err).__name__



def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)
