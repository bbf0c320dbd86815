"""Request validation at the API edge: the errors a tenant sees for bad input."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from seabox.errors import InvalidArgument, validation_error
from seabox.model.container import ContainerCreate, RestartPolicy, VolumeMount
from seabox.model.sizes import SIZES, get_size, smallest_fitting
from seabox.model.volume import VolumeCreate, parse_bytes


def problem(**kwargs: object) -> InvalidArgument:
    with pytest.raises(ValidationError) as info:
        ContainerCreate.model_validate({"image": "busybox", **kwargs})
    return validation_error(info.value)


def test_defaults() -> None:
    c = ContainerCreate(image="busybox")
    assert c.size == "s4" and str(c.restart) == "no" and c.volumes == [] and not c.tty


@pytest.mark.parametrize(
    ("kwargs", "field", "text"),
    [
        ({"size": "xl9"}, "size", "unknown size"),
        ({"name": "-bad"}, "name", "invalid container name"),
        ({"env": ["=A"]}, "env", "KEY=VALUE"),
        ({"restart": "on-failure:x"}, "restart", "whole number"),
        ({"restart": "always:3"}, "restart", "only on-failure"),
        ({"volumes": ["data"]}, "volumes", "NAME:/path"),
        ({"volumes": ["/srv:/data"]}, "volumes", "host paths cannot be mounted"),
        ({"volumes": ["data:relative"]}, "volumes", "absolute"),
        ({"volumes": ["data:/d:rx"]}, "volumes", "ro or rw"),
        ({"workdir": "tmp"}, "workdir", "absolute"),
        ({"surprise": 1}, "surprise", "unknown field"),
    ],
)
def test_bad_create_requests_name_the_field(kwargs: dict[str, object], field: str, text: str) -> None:
    err = problem(**kwargs)
    assert err.status == 400
    assert err.field is not None and err.field.startswith(field)
    assert text in err.message


def test_restart_and_volume_parsing() -> None:
    assert RestartPolicy.parse("on-failure:3").max_retries == 3
    assert str(RestartPolicy.parse("on-failure:3")) == "on-failure:3"
    v = VolumeMount.parse("data:/var/lib/data:ro")
    assert (v.volume, v.path, v.readonly) == ("data", "/var/lib/data", True)


def test_sizes_grow_and_memory_maps_to_the_smallest_fitting() -> None:
    sizes = list(SIZES.values())
    assert [s.cpu_shares for s in sizes] == sorted(s.cpu_shares for s in sizes)
    assert get_size("S1").memory_bytes == 64 << 20
    assert smallest_fitting(100 << 20).name == "s2"
    assert smallest_fitting(4 << 30).name == "m3"
    with pytest.raises(InvalidArgument):
        smallest_fitting(32 << 30)
    with pytest.raises(InvalidArgument) as info:
        get_size("huge")
    assert "s1" in info.value.message


def test_volume_sizes() -> None:
    assert parse_bytes("1GiB") == 1 << 30
    assert parse_bytes("512M") == 512 << 20
    assert VolumeCreate(name="vol", size="2g").size == 2 << 30  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        VolumeCreate(name="vol", size="lots")  # type: ignore[arg-type]


def test_new_volume_names_follow_dockers_rule_and_old_one_character_volumes_stay_mountable() -> None:
    assert VolumeCreate(name="a" * 255).name == "a" * 255
    for bad in ("v", "a" * 256, "-vol", "vol/x", "vol:x"):
        with pytest.raises(ValidationError) as info:
            VolumeCreate(name=bad)
        assert "2-255 of [a-zA-Z0-9_.-]" in validation_error(info.value).message
    assert VolumeMount.parse("v:/data").volume == "v"
