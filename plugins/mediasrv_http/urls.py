"""Upstream URLs that a key can never steer away from ``base_url``.

A key is data, never URL syntax: each of its segments is percent-encoded on its own and
appended to ``base_url``'s path, and the result is checked again afterwards (same scheme,
host and port; path still under the base path). Redirect targets get the same check.
"""

from __future__ import annotations

from urllib.parse import quote, unquote

from yarl import URL

from mediasrv import InvalidKey, has_control_character, starts_with_scheme

# Besides letters, digits and "-._~": sub-delimiters that mean nothing special in a path.
# ":" "@" ";" "%" "?" "#" and everything else are encoded, so a segment stays one segment
# of the path wherever it appears (no userinfo, no port, no matrix parameter, no query).
SAFE_CHARACTERS = "!$&'()*+,="

_MAX_DECODINGS = 4  # a segment still changing after this many percent-decodings is refused


def parse_base_url(value: str) -> URL:
    """``base_url`` checked and normalised: http(s), a host, no userinfo, query or fragment,
    and a path ending with "/" (so keys append below it). ValueError says what is wrong."""
    try:
        url = URL(value.strip())
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a valid URL ({exc})") from None
    if url.scheme not in ("http", "https"):
        raise ValueError("must start with http:// or https://")
    if not url.host:
        raise ValueError("has no host")
    if url.raw_user is not None or url.raw_password is not None:
        raise ValueError("must not contain credentials (user:password@); use `headers`")
    if url.raw_query_string or "?" in value:
        raise ValueError("must not have a query string")
    if url.raw_fragment or "#" in value:
        raise ValueError("must not have a fragment")
    path = url.raw_path or "/"
    if not path.endswith("/"):
        path += "/"
    for segment in path.strip("/").split("/"):
        try:
            if segment:
                check_segment(segment)
        except InvalidKey:
            raise ValueError(f"has an unsafe path segment {segment!r}") from None
    return url.with_path(path, encoded=True)


def build_url(base: URL, key: str) -> URL:
    """The upstream URL of ``key`` under ``base`` (as from ``parse_base_url``); InvalidKey if
    the key is not a plain relative path, looks like an absolute URL, or would leave ``base``."""
    segments = key.split("/")
    for segment in segments:
        check_segment(segment)
    if starts_with_scheme(segments[0]):
        raise InvalidKey("key looks like an absolute URL")
    path = base.raw_path + "/".join(quote(segment, safe=SAFE_CHARACTERS) for segment in segments)
    url = base.with_path(path, encoded=True)
    if not is_under(base, url):  # cannot happen with the checks above; cheap to be sure
        raise InvalidKey("key leaves the base URL")
    return url


def check_segment(segment: str) -> None:
    """InvalidKey unless ``segment`` is one harmless path segment, however many times an
    upstream or a proxy percent-decodes it: never empty, ``.``, ``..`` (``%2e%2e``,
    ``%252e%252e``, ``..;x``), only dots and spaces, a slash or backslash, or a control character."""
    decoded = segment
    for _ in range(_MAX_DECODINGS):
        if not decoded:
            raise InvalidKey("empty path segment in key")
        if decoded.split(";", 1)[0].strip(". ") == "":
            raise InvalidKey("'.' or '..' path segment in key (percent-encoded or not)")
        if "/" in decoded or "\\" in decoded:
            raise InvalidKey("encoded slash or backslash in key")
        if has_control_character(decoded):
            raise InvalidKey("control character in key")
        once_more = unquote(decoded)
        if once_more == decoded:
            return
        decoded = once_more
    raise InvalidKey("key is percent-encoded too many times")


def same_origin(base: URL, url: URL) -> bool:
    """Same scheme, host and port (default ports filled in), and no userinfo."""
    return (
        url.scheme == base.scheme
        and (url.host or "").lower() == (base.host or "").lower()
        and url.port == base.port
        and url.raw_user is None
        and url.raw_password is None
    )


def is_under(base: URL, url: URL) -> bool:
    """Whether ``url`` names something below ``base``: same origin, path inside the base path,
    each further segment harmless. A query is allowed (a redirect may carry one)."""
    if not same_origin(base, url) or not url.raw_path.startswith(base.raw_path):
        return False
    rest = url.raw_path[len(base.raw_path) :]
    try:
        for segment in rest.split("/"):
            check_segment(segment)
    except InvalidKey:
        return False
    return True
