"""Docker's detach keys: the parser of --detach-keys and the watch that finds them in a terminal's input."""

from __future__ import annotations

import pytest

from seabox.api.docker.hijack import DEFAULT_DETACH_KEYS, DetachWatch, parse_detach_keys
from seabox.errors import InvalidArgument


@pytest.mark.parametrize(
    ("text", "keys"),
    [
        ("", b"\x10\x11"),
        ("ctrl-p,ctrl-q", b"\x10\x11"),
        ("ctrl-a,b", b"\x01b"),
        ("X", b"X"),
        ("ctrl-@,ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_", b"\x00\x1b\x1c\x1d\x1e\x1f"),
        ("ctrl-z,DEL", b"\x1a\x7f"),
    ],
)
def test_docker_key_sequences_parse_to_their_codes(text: str, keys: bytes) -> None:
    assert parse_detach_keys(text, "detachKeys") == keys


@pytest.mark.parametrize("text", ["ab", "ctrl-A", "ctrl-1", "a,,b", "ctrl-", "é", "ctrl-p,", "shift-a"])
def test_anything_else_is_a_400_naming_the_field(text: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        parse_detach_keys(text, "detachKeys")
    assert err.value.status == 400 and err.value.field == "detachKeys" and "invalid detach keys" in err.value.message


def test_the_default_is_ctrl_p_ctrl_q() -> None:
    assert DEFAULT_DETACH_KEYS == b"\x10\x11"


def test_input_before_the_sequence_goes_on_and_what_follows_it_is_dropped() -> None:
    watch = DetachWatch(b"\x10\x11")
    assert watch.feed(b"ls\r") == (b"ls\r", False)
    assert watch.feed(b"ab\x10\x11cd") == (b"ab", True)


def test_a_sequence_split_across_chunks_is_found_and_a_near_miss_is_given_back() -> None:
    watch = DetachWatch(b"\x10\x11")
    assert watch.feed(b"x\x10") == (b"x", False)  # held: it may be the start of the sequence
    assert watch.feed(b"y") == (b"\x10y", False)  # it was not: given back in order
    assert watch.feed(b"\x10") == (b"", False)
    assert watch.feed(b"\x11") == (b"", True)


def test_a_repeated_first_key_still_matches() -> None:
    watch = DetachWatch(b"aab")
    assert watch.feed(b"a") == (b"", False)
    assert watch.feed(b"a") == (b"", False)
    assert watch.feed(b"a") == (b"a", False)
    assert watch.feed(b"b") == (b"", True)
