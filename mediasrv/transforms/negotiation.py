"""The output format: what ``Accept`` allows (before decoding), then the final choice (after).

Before decoding only the *token* is known: ``source`` (no ``format``), an explicit format, or
for ``format=auto`` the best modern format ``Accept`` names (``avif``, ``webp``) else
``legacy``. The derived ETag hashes the token, so a 304 needs no decode. The worker then
resolves the token with what the image is: ``legacy`` is PNG for images with alpha, else JPEG.
"""

from __future__ import annotations

from mediasrv.transforms.options import TransformOptions

SOURCE = "source"
LEGACY = "legacy"
MODERN = ("avif", "webp")  # preference order when Accept gives them the same q-value

CONTENT_TYPES = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "avif": "image/avif",
    "gif": "image/gif",
}
ANIMATED_FORMATS = frozenset({"gif", "webp"})


def format_token(options: TransformOptions, accept: str | None) -> str:
    """The token deciding the output format, from the options and the request's Accept header."""
    if options.format is None:
        return SOURCE
    if options.format == "auto":
        return accepted_token(accept)
    return options.format


def accepted_token(accept: str | None) -> str:
    """``avif`` or ``webp``, whichever ``Accept`` names explicitly with the higher q-value
    (AVIF on a tie), else ``legacy``.

    Wildcards (``*/*``, ``image/*``) never select a modern format: browsers that cannot decode
    AVIF send them too.
    """
    weights = accept_weights(accept or "")
    best = max(MODERN, key=lambda name: (weights.get(f"image/{name}", 0.0), name == MODERN[0]))
    return best if weights.get(f"image/{best}", 0.0) > 0 else LEGACY


def accept_weights(accept: str) -> dict[str, float]:
    """Media range -> q-value of an Accept header (a malformed q counts as 0, RFC 9110 §12.4.2)."""
    weights: dict[str, float] = {}
    for item in accept.split(","):
        media_range, *parameters = (part.strip() for part in item.split(";"))
        if not media_range:
            continue
        q = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                q = _q_value(value.strip())
        media_range = media_range.lower()
        weights[media_range] = max(q, weights.get(media_range, 0.0))
    return weights


def _q_value(text: str) -> float:
    try:
        q = float(text)
    except ValueError:
        return 0.0
    return q if 0.0 <= q <= 1.0 else 0.0


def choose_format(token: str, source_format: str, has_alpha: bool, animated: bool) -> str:
    """The output format of a decoded image: ``source_format`` is what the source is
    (``jpeg``, ``png``, ``webp``, ``gif``, ``avif``, else ``legacy`` for formats mediasrv does
    not write, such as SVG or HEIC); ``animated`` means several frames are kept."""
    if token == SOURCE:
        token = source_format
    if animated and token not in ANIMATED_FORMATS:
        # Every browser that decodes AVIF decodes WebP; libvips writes no animated AVIF.
        return "webp" if token == "avif" else "gif"
    if token == LEGACY:
        return "png" if has_alpha else "jpeg"
    return token
