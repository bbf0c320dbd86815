"""Unit tests of commit/import config edits (`--change`, the commit body) and of the upper-dir-to-layer writer."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest

from seabox.api.docker.image_changes import apply_body, apply_changes
from seabox.errors import InvalidArgument
from seabox.node.images.build import history_of
from seabox.node.images.layer_tar import upper_to_layer
from seabox.protocol.images import ImageConfig


def test_changes_apply_in_order_as_dockerfile_lines() -> None:
    base = ImageConfig(env=["PATH=/bin", "A=1"], cmd=["sh"], working_dir="/srv")
    out = apply_changes(base, ['CMD ["cat", "/x"]', "ENV A=2 B=\"two words\"", "EXPOSE 80 53/udp",
                               "LABEL k=v", "WORKDIR app", "USER nobody", "VOLUME /data", "STOPSIGNAL SIGINT"])
    assert out.cmd == ["cat", "/x"] and out.env == ["PATH=/bin", "A=2", "B=two words"]
    assert out.exposed_ports == ["53/udp", "80/tcp"] and out.labels == {"k": "v"}
    assert (out.working_dir, out.user, out.volumes, out.stop_signal) == ("/srv/app", "nobody", ["/data"], "SIGINT")
    assert base.env == ["PATH=/bin", "A=1"]  # the base is untouched
    assert apply_changes(base, ["ENTRYPOINT echo hi"]).entrypoint == ["/bin/sh", "-c", "echo hi"]


@pytest.mark.parametrize("line", ["RUN rm -rf /", "HEALTHCHECK NONE", "CMD", "EXPOSE 99999", 'CMD ["a", 1]',
                                  "ENV =x"])
def test_changes_refused_name_the_field(line: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        apply_changes(ImageConfig(), [line])
    assert err.value.field == "changes"


def test_commit_body_sets_fields_and_refuses_unknown_ones() -> None:
    out = apply_body(ImageConfig(cmd=["sh"]), {"Cmd": ["true"], "Env": ["A=b"], "Tty": False, "Hostname": "",
                                                "ExposedPorts": {"8080/tcp": {}}})
    assert out.cmd == ["true"] and out.env == ["A=b"] and out.exposed_ports == ["8080/tcp"]
    merged = apply_body(ImageConfig(env=["A=a", "P=/bin"], labels={"x": "1"}), {"Env": ["A=b"], "Labels": {"y": "2"}})
    assert merged.env == ["A=b", "P=/bin"] and merged.labels == {"x": "1", "y": "2"}
    with pytest.raises(InvalidArgument) as err:
        apply_body(ImageConfig(), {"Memory": 5})
    assert err.value.field == "Memory"


def test_upper_dir_becomes_a_layer_with_whiteouts_and_container_owners(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    (upper / "etc").mkdir(parents=True)
    (upper / "etc" / "new").write_text("x")
    os.mknod(upper / "gone", 0o600 | 0o020000, 0)  # an overlay whiteout: char device 0/0
    (upper / "opq").mkdir()
    os.setxattr(upper / "opq", "trusted.overlay.opaque", b"y")
    os.symlink("/etc/passwd", upper / "link")
    base = 100000
    os.chown(upper / "etc" / "new", base + 5, base + 6)
    os.lchown(upper / "link", 7, 7)  # outside the container's range: nobody
    out = tmp_path / "layer.tar"
    upper_to_layer(upper, out, base)
    with tarfile.open(out) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert set(members) == {"etc", "etc/new", ".wh.gone", "opq", "opq/.wh..wh..opq", "link"}
    assert (members["etc/new"].uid, members["etc/new"].gid) == (5, 6)
    assert members["link"].issym() and members["link"].linkname == "/etc/passwd" and members["link"].uid == 65534
    assert members[".wh.gone"].isfile() and members[".wh.gone"].size == 0


def test_history_pairs_steps_with_their_layers_newest_first() -> None:
    manifest = {"layers": [{"size": 10}, {"size": 20}]}
    config = {"history": [{"created_by": "base"}, {"created_by": "env", "empty_layer": True},
                          {"created_by": "commit", "comment": "c"}]}
    steps = history_of(manifest, config)
    assert [(s.created_by, s.size, s.empty_layer) for s in steps] == [("commit", 20, False), ("env", 0, True),
                                                                      ("base", 10, False)]
