"""Object key validation, made before any backend sees a key."""

from __future__ import annotations

import pytest

from mediasrv.errors import InvalidKey
from mediasrv.keys import MAX_KEY_BYTES, validate_key


@pytest.mark.parametrize(
    "key",
    [
        "a",
        "image.jpg",
        "a/b/c/d.png",
        "photos/2024/01/landscape.webp",
        "with space/and more spaces.jpg",
        " leading and trailing ",
        "ünïcödé/файл/写真.jpg",
        "emoji/😀.png",
        "a..b/c...d",  # dots inside a segment are fine
        "...",
        ".hidden/file",  # hidden files are the backend's business
        "a/b.",
        "percent%2e%2e/literal",  # already decoded: a literal % is just a character
        "x" * MAX_KEY_BYTES,
        "é" * (MAX_KEY_BYTES // 2),  # 2 bytes each: exactly the limit
    ],
)
def test_validate_key_accepts(key: str) -> None:
    assert validate_key(key) == key


@pytest.mark.parametrize(
    "key",
    [
        "",
        ".",
        "..",
        "../etc/passwd",
        "a/../b",
        "a/..",
        "a/./b",
        "./a",
        "a/.",
        "a//b",
        "a/",
        "/",
        "/etc/passwd",
        "/a",
        "//a",
        "http://x/y",
        "file:///etc/passwd",
        "s3://bucket/key",
    ],
)
def test_validate_key_refuses_bad_segments(key: str) -> None:
    with pytest.raises(InvalidKey):
        validate_key(key)


@pytest.mark.parametrize("key", ["a\\b", "..\\..\\windows", "\\", "C:\\x"])
def test_validate_key_refuses_backslash(key: str) -> None:
    with pytest.raises(InvalidKey):
        validate_key(key)


@pytest.mark.parametrize("char", ["\x00", "\x01", "\t", "\n", "\r", "\x1b", "\x1f", "\x7f"])
def test_validate_key_refuses_control_characters(char: str) -> None:
    with pytest.raises(InvalidKey):
        validate_key(f"a{char}b")
    with pytest.raises(InvalidKey):
        validate_key(f"dir/file{char}")


@pytest.mark.parametrize(
    "key",
    [
        "x" * (MAX_KEY_BYTES + 1),
        "é" * (MAX_KEY_BYTES // 2 + 1),  # 1026 bytes in 513 characters
        "😀" * (MAX_KEY_BYTES // 4 + 1),
        "a/" * 600 + "b",
    ],
)
def test_validate_key_refuses_too_long(key: str) -> None:
    with pytest.raises(InvalidKey):
        validate_key(key)


def test_validate_key_limit_counts_utf8_bytes_not_characters() -> None:
    key = "é" * 600  # 600 characters, 1200 bytes
    assert len(key) < MAX_KEY_BYTES
    with pytest.raises(InvalidKey):
        validate_key(key)


def test_validate_key_invalid_key_is_a_400_value_error() -> None:
    with pytest.raises(ValueError) as caught:
        validate_key("a/../b")
    assert isinstance(caught.value, InvalidKey)
    assert caught.value.status == 400
    assert caught.value.detail
