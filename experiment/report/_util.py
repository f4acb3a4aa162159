"""Small helpers the report modules share: tolerant config lookups and one-line error text."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf


def _select(config: Any, key: str) -> Any:
    try:
        value = OmegaConf.select(config, key, default=None)
    except Exception:
        return None
    if isinstance(value, DictConfig) or OmegaConf.is_list(value):
        try:
            return OmegaConf.to_container(value, resolve=True)
        except Exception:
            return OmegaConf.to_container(value, resolve=False)
    return value



def _mean(xs: Any) -> float:
    values = list(xs)
    return sum(values) / len(values)



def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)



def _mask(storage: str | None) -> str | None:
    """A storage URL without its password (report files are shared)."""
    if storage is None or "@" not in storage or "://" not in storage:
        return storage
    scheme, rest = storage.split("://", 1)
    return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"



def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:300] if text else type(err).__name__



def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)
