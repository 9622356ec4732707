"""Credentials never leave the process: URIs are redacted wherever the project prints or logs them.

A tracking URI or storage path may carry secrets: ``https://user:password@host``, a token in
the query string (``s3://bucket/path?access_key=...&secret_key=...``, presigned URLs), or a
database password (``postgresql://user:password@host/db``). ``redact`` keeps what tells a
person where the data goes (scheme, host, path) and replaces the rest with ``***``;
``redact_mapping`` does it for the URI-valued fields of a sweep spec before it is logged as
MLflow params or written to results.json.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

SECRET = "***"
URI_FIELDS = ("tracking_uri", "storage_path", "address", "data_dir", "cache_dir")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"]+")


def redact(text: str | None) -> str | None:
    """Every URI in ``text`` with its password and query values replaced by ``***``."""
    if not text:
        return text
    return _URI.sub(lambda m: _redact_uri(m.group(0)), text)


def _redact_uri(uri: str) -> str:
    try:
        parts = urlsplit(uri)
    except ValueError:
        return uri
    if "@" not in parts.netloc and not parts.query:
        return uri  # nothing secret (and urlunsplit would rewrite sqlite:/// paths)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{SECRET}@{host}" if ":" in userinfo else f"{SECRET}@{host}"
    query = urlencode([(k, SECRET) for k, _ in parse_qsl(parts.query, keep_blank_values=True)], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_mapping(data: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of nested ``data`` with every string value redacted (URIs only are changed)."""
    return {k: redact_mapping(v) if isinstance(v, Mapping) else (redact(v) if isinstance(v, str) else v)
            for k, v in data.items()}
