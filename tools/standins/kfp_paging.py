"""Listing pages of the KFP stand-in's API, as the real API server pages them (``backend/src/apiserver/list``).

Why: the launcher follows ``next_page_token`` (its shared run listing, the recurring runs it looks for); a stand-in
that returns everything at once never exercises that loop, nor a listing that outgrows one page.

The real server's rules, kept here: ``page_size`` 0 or missing means 20, above 200 means 200, below 0 is a 400;
``sort_by`` is ``"field"``, ``"field asc"`` or ``"field desc"`` (ascending by default, on the creation time by
default), rows of one sort value are ordered by the resource's id; ``filter`` is a JSON ``Filter`` whose predicates
must all hold (only EQUALS is supported here). The page token is opaque (base64 JSON) and names the first row of
the next page by its (sort value, id) with the sort and filter of the listing: a later page starts at that row
whatever was created meanwhile (keyset paging: no row is served twice, none is skipped that existed when the
listing began). A token that cannot be read, or whose sort or filter differ from the request's, is a 400.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Iterable

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 200
EQUALS = (1, "EQUALS")


class BadRequest(ValueError):
    """The listing's arguments are wrong: the API answers 400 (code 3, INVALID_ARGUMENT) with this message."""


def page_size(query: dict[str, str]) -> int:
    raw = query.get("page_size") or "0"
    try:
        size = int(raw)
    except ValueError:
        raise BadRequest(f"page_size must be an integer, got {raw!r}") from None
    if size < 0:
        raise BadRequest(f"The page size should be greater than 0. Got {size}")
    return min(size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def predicates(filter_json: str | None) -> list[tuple[str, str]]:
    """The filter's (key, value) equalities; a filter that is not JSON or uses another operation is a 400."""
    if not filter_json:
        return []
    try:
        parsed = json.loads(filter_json)
        preds = parsed.get("predicates", []) if isinstance(parsed, dict) else None
    except ValueError:
        preds = None
    if not isinstance(preds, list):
        raise BadRequest(f"filter must be a JSON Filter object with a predicates list, got {filter_json[:200]!r}")
    out: list[tuple[str, str]] = []
    for p in preds:
        if not isinstance(p, dict) or "key" not in p:
            raise BadRequest(f"filter predicate without a key: {p!r}")
        if p.get("operation") not in EQUALS:
            raise BadRequest(f"unsupported filter operation {p.get('operation')!r}: the stand-in supports EQUALS")
        out.append((str(p["key"]), str(p.get("stringValue", p.get("string_value", "")))))
    return out


def matches(item: dict, preds: list[tuple[str, str]]) -> bool:
    return all(str(item.get(key, "")) == value for key, value in preds)


def _sort(sort_by: str, fields: dict[str, str], default: str) -> tuple[str, bool]:
    words = sort_by.lower().split()
    if len(words) > 2 or (len(words) == 2 and words[1] not in ("asc", "desc")):
        raise BadRequest(f'Received invalid sort by format {sort_by!r}. Supported format: "field_name", '
                         '"field_name desc", or "field_name asc"')
    if not words:
        return default, False
    if words[0] not in fields:
        raise BadRequest(f"Invalid sorting field: {words[0]!r}; allowed: {', '.join(sorted(fields))}")
    return fields[words[0]], len(words) == 2 and words[1] == "desc"


def _encode(token: dict) -> str:
    return base64.b64encode(json.dumps(token, sort_keys=True).encode()).decode()


def _decode(text: str) -> dict:
    try:
        token = json.loads(base64.b64decode(text.encode(), validate=True))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        token = None
    if not isinstance(token, dict) or not {"sort", "desc", "filter", "value", "key"} <= token.keys():
        raise BadRequest("Invalid page token: not a token this server gave out")
    return token


def page(items: Iterable[dict], query: dict[str, str], *, key: str, fields: dict[str, str],
         default_sort: str = "created_at") -> tuple[list[dict], str, int]:
    """One page of ``items`` (the rows ``query``'s ``filter`` keeps), ordered by its ``sort_by`` (a name of
    ``fields``, which maps API sort names to row keys) then by the row's ``key``: (rows, next page token or
    ``""`` on the last page, how many rows the filter keeps)."""
    size = page_size(query)
    sort, desc = _sort(query.get("sort_by", ""), fields, default_sort)
    filter_json = query.get("filter") or ""
    token = _decode(query["page_token"]) if query.get("page_token") else None
    if token is not None:
        if (query.get("sort_by") and (token["sort"], token["desc"]) != (sort, desc)) \
                or (filter_json and token["filter"] != filter_json):
            raise BadRequest("Invalid page token: its sort_by or filter differ from the request's")
        sort, desc, filter_json = token["sort"], bool(token["desc"]), token["filter"]
    preds = predicates(filter_json)

    def order(r: dict) -> tuple[str, str]:
        return str(r.get(sort) or ""), str(r[key])

    rows = sorted((r for r in items if matches(r, preds)), key=order, reverse=desc)
    total = len(rows)
    if token is not None:  # from the token's row on, in the listing's direction
        start = (str(token["value"]), str(token["key"]))
        rows = [r for r in rows if (order(r) <= start if desc else order(r) >= start)]
    out, rest = rows[:size], rows[size:size + 1]
    next_token = ""
    if rest:
        nxt = rest[0]
        next_token = _encode({"sort": sort, "desc": desc, "filter": filter_json, "value": str(nxt.get(sort) or ""),
                              "key": str(nxt[key])})
    return out, next_token, total
