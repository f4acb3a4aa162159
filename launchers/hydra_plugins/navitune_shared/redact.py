r"""The one masking of secrets in anything navitune logs or records (MLflow params and tags, artifacts, log
lines, KFP run descriptions, Slack messages, report files), by the structure of the URLs in the text.

Why by structure and not by one pattern: secrets arrive in several places of a URL, written by hand or escaped
by Hydra. In any text, also where Hydra escaped an override (``http\://navi\:pw@host``), these are masked:

* a URL's user info when it holds a password (``scheme://user:pw@host`` -> ``scheme://***@host``), and the lone
  user of an http(s) URL (a token in the user's place, ``https://TOKEN@host``);
* the value of a query (or fragment) parameter whose name looks like a password, passwd, pwd, token, key,
  secret, credential, auth or signature (``...?password=***``);
* the path of a webhook URL, with or without a scheme (``hooks.slack.com/***``): a webhook's path IS its secret.

An unresolved interpolation (``${oc.env:VAR}``) names where a secret is, it is not one: it stays. That is the
rule the whole project follows: configs hold secrets by reference, and only a process that needs the value
resolves it.

Standard library only: Hydra imports this package at every start.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Any, Iterable

MASK = "***"
# characters Hydra escapes in override values (hydra._internal.grammar.utils._ESC)
_ESCAPABLE = frozenset("\\()[]{}:=, \t")
_SECRET_NAME = re.compile(r"pass|pwd|token|secret|key|credential|auth|signature|^sig$", re.IGNORECASE)
_REFERENCE = re.compile(r"(\$\{[^{}]*\})+")
_TOKEN_USER_SCHEMES = ("http", "https", "ws", "wss")
_WEBHOOK_SEGMENTS = ("hooks", "webhook", "webhooks")
# services whose webhook paths sit under a host that is not itself named like a webhook
_WEBHOOK_SERVICES = ("discord.com", "discordapp.com", "outlook.office.com", "chat.googleapis.com")
# a URL with a scheme; one without (host.tld[:port]/path), which is masked only when it is a webhook
_SCHEMED = re.compile(r"(?<![A-Za-z0-9+.\-])[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>`]*")
_BARE = re.compile(r"(?<![\w.@/\-])(?:[A-Za-z0-9\-]+\.)+[A-Za-z]{2,}(?::[0-9]+)?/[^\s'\"<>`]*")


def redact(text: Any, *known: str | None) -> str:
    """``text`` (any value, as ``str``) with every secret found by structure masked (see the module
    docstring), and every occurrence of the ``known`` secret values (e.g. a webhook URL read from the
    environment, and its path) too."""
    out = str(text)
    for value in known:
        out = _replace_known(out, value)
    return _redact_structure(out)


def holds_secret(text: str) -> bool:
    """Does ``text`` hold a literal secret that :func:`redact` would mask (not a ``${...}`` reference)?"""
    return _redact_structure(text) != text


def is_reference(text: str) -> bool:
    """Is ``text`` nothing but unresolved interpolations, e.g. ``${oc.env:DB_PASSWORD}``?"""
    return bool(_REFERENCE.fullmatch(text))


def literal_secrets(node: Any, path: str = "") -> dict[str, str]:
    """The strings of a plain container (an unresolved config from ``OmegaConf.to_container(cfg,
    resolve=False)``) that hold a literal secret, by key (``a.b[0].c``), in order."""
    found: dict[str, str] = {}
    if isinstance(node, dict):
        for key, value in node.items():
            found |= literal_secrets(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            found |= literal_secrets(value, f"{path}[{i}]")
    elif isinstance(node, str) and holds_secret(node):
        found[path] = node
    return found


def without_userinfo(url: str) -> str:
    """``url`` without any ``user[:password]@`` part: for links that are shown, posted or sent to jobs."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


# ------------------------------------------------------------------------------------------ internals
def _replace_known(text: str, value: str | None) -> str:
    """``text`` without ``value``, nor (a URL) its path, which is what urllib's errors show of it."""
    value = (value or "").strip()
    if len(value) < 4:  # too short to be told apart from ordinary text
        return text
    text = text.replace(value, MASK)
    rest = value.split("://", 1)[-1]
    path = rest.partition("/")[2]
    return text.replace(path, MASK) if len(path) >= 8 else text


def _redact_structure(text: str) -> str:
    if "/" not in text:  # every form masked here has one ("://", or a webhook's host/path)
        return text
    plain, where = _unescape(text)
    spans: list[tuple[int, int]] = []
    taken: list[tuple[int, int]] = []
    for m in _SCHEMED.finditer(plain):
        taken.append(m.span())
        spans += [(m.start() + a, m.start() + b) for a, b in _url_spans(m.group(0), schemed=True)]
    for m in _BARE.finditer(plain):
        if any(a < m.end() and m.start() < b for a, b in taken):
            continue
        spans += [(m.start() + a, m.start() + b) for a, b in _url_spans(m.group(0), schemed=False)]
    if not spans:
        return text
    out, last = [], 0
    for a, b in _merge(spans):  # back to positions in the original (escaped) text
        start, end = where[a], where[b - 1] + 1
        out += [text[last:start], MASK]
        last = end
    out.append(text[last:])
    return "".join(out)


def _unescape(text: str) -> tuple[str, list[int]]:
    """``text`` without Hydra's escaping backslashes, and the position in ``text`` of each kept character."""
    chars: list[str] = []
    where: list[int] = []
    i = 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in _ESCAPABLE:
            i += 1
        chars.append(text[i])
        where.append(i)
        i += 1
    return "".join(chars), where


def _merge(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for a, b in sorted(s for s in spans if s[1] > s[0]):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else:
            merged.append((a, b))
    return merged


def _end_of(url: str, chars: str, start: int) -> int:
    ends = [i for i in (url.find(c, start) for c in chars) if i >= 0]
    return min(ends, default=len(url))


def _url_spans(url: str, schemed: bool) -> list[tuple[int, int]]:
    """The spans of ``url`` (one URL, unescaped) that hold secrets."""
    scheme = url.split("://", 1)[0].lower() if schemed else ""
    start = len(scheme) + 3 if schemed else 0
    end = _end_of(url, "/?#", start)
    if schemed and scheme not in ("http", "https"):
        # a database URL's password is "anything but @" (SQLAlchemy): it may hold an unescaped '/' or '#'
        last_at = url.rfind("@", start, _end_of(url, "? ", start))
        if last_at >= 0:
            end = max(end, _end_of(url, "/?#", last_at))
    spans = []
    authority = url[start:end]
    at = authority.rfind("@")
    if at >= 0:
        user, colon, password = authority[:at].partition(":")
        if (colon and password and not is_reference(password)) or (
                not colon and user and scheme in _TOKEN_USER_SCHEMES and not is_reference(user)):
            spans.append((start, start + at))
    hostport = authority[at + 1:].lower()
    host = hostport.partition("]")[0] + "]" if hostport.startswith("[") else hostport.partition(":")[0]
    path = url[end:_end_of(url, "?#", end)]
    if _is_webhook(scheme, host, path):
        return spans + [(end + 1, len(url))] if len(url) > end + 1 else spans
    spans += _param_spans(url, end)
    return spans


def _is_webhook(scheme: str, host: str, path: str) -> bool:
    if host.startswith("hooks.") or "webhook" in host:
        return True
    segments = [s.lower() for s in path.split("/")]
    by_path = any(s in _WEBHOOK_SEGMENTS for s in segments)
    if scheme:  # a file or database URL may have a folder named hooks
        return by_path and scheme in ("http", "https")
    return by_path and host in _WEBHOOK_SERVICES


def _param_spans(url: str, start: int) -> list[tuple[int, int]]:
    """The values of secret-named parameters in the query and the fragment."""
    spans = []
    q = url.find("?", start)
    h = url.find("#", start)
    for begin, stop in ((q, h if h > q else len(url)), (h, len(url))):
        if begin < 0:
            continue
        pos = begin + 1
        for item in re.split(r"([&;])", url[pos:stop]):
            name, eq, value = item.partition("=")
            if eq and value and _SECRET_NAME.search(urllib.parse.unquote(name)) and not is_reference(value):
                vstart = pos + len(name) + 1
                spans.append((vstart, vstart + len(value)))
            pos += len(item)
    return spans
