"""Image reference parsing and normalisation, checked against what Docker does."""

from __future__ import annotations

import pytest

from seabox.errors import InvalidArgument
from seabox.model.reference import ImageRef, parse_reference

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("ref", "registry", "repository", "tag", "digest"),
    [
        ("busybox", "docker.io", "library/busybox", "latest", None),
        ("busybox:1.36", "docker.io", "library/busybox", "1.36", None),
        ("user/app:1", "docker.io", "user/app", "1", None),
        ("docker.io/library/busybox:latest", "docker.io", "library/busybox", "latest", None),
        ("index.docker.io/busybox", "docker.io", "library/busybox", "latest", None),
        ("docker.io/user/app", "docker.io", "user/app", "latest", None),
        ("127.0.0.1:5000/busybox", "127.0.0.1:5000", "busybox", "latest", None),
        ("127.0.0.1:5000/library/busybox:v2", "127.0.0.1:5000", "library/busybox", "v2", None),
        ("localhost/x", "localhost", "x", "latest", None),
        ("localhost:5000/a/b/c:t", "localhost:5000", "a/b/c", "t", None),
        ("quay.io/org/app:v1.2.3-rc_1", "quay.io", "org/app", "v1.2.3-rc_1", None),
        ("[::1]:5000/app", "[::1]:5000", "app", "latest", None),
        ("my-org/my_app__x.y", "docker.io", "my-org/my_app__x.y", "latest", None),
        (f"busybox@{DIGEST}", "docker.io", "library/busybox", None, DIGEST),
        (f"busybox:1.36@{DIGEST}", "docker.io", "library/busybox", "1.36", DIGEST),
        (f"127.0.0.1:5000/busybox@{DIGEST}", "127.0.0.1:5000", "busybox", None, DIGEST),
        # A first component with capitals can only be a registry host, as in Docker.
        ("Registry/app", "Registry", "app", "latest", None),
    ],
)
def test_normalises_like_docker(
    ref: str, registry: str, repository: str, tag: str | None, digest: str | None
) -> None:
    assert parse_reference(ref) == ImageRef(registry, repository, tag, digest)


@pytest.mark.parametrize(
    ("ref", "name", "familiar"),
    [
        ("busybox", "docker.io/library/busybox:latest", "busybox:latest"),
        ("user/app:1", "docker.io/user/app:1", "user/app:1"),
        ("docker.io/library/a/b", "docker.io/library/a/b:latest", "library/a/b:latest"),
        ("127.0.0.1:5000/busybox", "127.0.0.1:5000/busybox:latest", "127.0.0.1:5000/busybox:latest"),
        ("localhost/x", "localhost/x:latest", "localhost/x:latest"),
        (f"busybox@{DIGEST}", f"docker.io/library/busybox@{DIGEST}", f"busybox@{DIGEST}"),
        (f"busybox:1@{DIGEST}", f"docker.io/library/busybox:1@{DIGEST}", f"busybox:1@{DIGEST}"),
    ],
)
def test_name_and_familiar(ref: str, name: str, familiar: str) -> None:
    parsed = parse_reference(ref)
    assert parsed.name == name
    assert parsed.familiar == familiar
    assert parse_reference(parsed.name) == parsed
    assert parse_reference(parsed.familiar) == parsed


def test_repo_drops_tag_and_digest() -> None:
    assert parse_reference(f"busybox:1@{DIGEST}").repo == "docker.io/library/busybox"


@pytest.mark.parametrize(
    ("ref", "why"),
    [
        ("", "empty"),
        ("Busybox", "must be lowercase"),
        ("docker.io/Library/busybox", "must be lowercase"),
        ("127.0.0.1:5000/BusyBox:latest", "must be lowercase"),
        ("Registry/App", "must be lowercase"),
        ("busybox:", "not a valid"),
        ("busybox:-x", "not a valid"),
        ("busybox:" + "t" * 129, "not a valid"),
        ("busybox:bad!", "not a valid"),
        ("busy box", "not a valid"),
        ("/busybox", "not a valid"),
        ("busybox/", "not a valid"),
        ("busybox@sha256:abc", "not a valid"),
        ("busybox@sha256:" + "A" * 64, "lowercase hex"),
        ("busybox@sha256:" + "a" * 63 + "0a", "64 lowercase hex"),
        ("busybox@md5:" + "a" * 32, "unsupported digest algorithm"),
        ("a" * 64, "64-byte hexadecimal"),
        ("a_b.c/x", "not a valid registry host"),
        ("x/" + "a" * 300, "longer than 255"),
    ],
)
def test_rejects_bad_references(ref: str, why: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_reference(ref)
    assert why in caught.value.message
    assert repr(ref) in caught.value.message
    assert caught.value.status == 400
