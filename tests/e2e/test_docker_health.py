"""Healthchecks through the docker CLI and SDK: --health-* flags, the image's HEALTHCHECK, State.Health, ps, events."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from seabox.model.runtime import RUNTIME_CLASSES
from tests.e2e.docker_fixtures import (
    DOCKER,
    DockerCli,
    cleaned,
    docker_config,
    native,
    pull,
    sdk_client,
    unique,
    wait_for,
)
from tests.fixtures.images import LAYOUT_TAG
from tests.fixtures.server import Server, class_tenant

FAST = ["--health-interval", "200ms", "--health-timeout", "2s"]


@pytest.fixture
def dcli(server: Server, tmp_path: Path, busybox_image: str) -> Iterator[DockerCli]:
    """The docker CLI as a tenant of its own that has pulled busybox; what it made is removed afterwards."""
    tenant = unique("health")
    with cleaned(server, tenant):
        pull(server, tenant, busybox_image)
        yield DockerCli(server, tenant, docker_config(server, tenant, tmp_path))


def health(cli: DockerCli, name: str) -> dict[str, Any]:
    return cli.inspect(name)[0]["State"].get("Health") or {}


def _blob(layout: Path, data: bytes) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def with_healthcheck(layout: Path, check: dict[str, Any]) -> None:
    """Set the image config's Healthcheck (as `docker build` writes a HEALTHCHECK) in the layout's one image."""
    index = json.loads((layout / "index.json").read_text())
    entry = index["manifests"][0]
    manifest = json.loads((layout / "blobs" / "sha256" / entry["digest"][7:]).read_text())
    config = json.loads((layout / "blobs" / "sha256" / manifest["config"]["digest"][7:]).read_text())
    config["config"]["Healthcheck"] = check
    manifest["config"].update(_blob(layout, json.dumps(config).encode()))
    entry.update(_blob(layout, json.dumps(manifest).encode()))
    (layout / "index.json").write_text(json.dumps(index))


@pytest.fixture
def healthcheck_image(registry: str, busybox_layout: Path, tmp_path: Path) -> str:
    """busybox with HEALTHCHECK --interval=200ms --retries=2 CMD test -e /tmp/ok, pushed to the test registry."""
    layout = tmp_path / "layout"
    shutil.copytree(busybox_layout, layout)
    with_healthcheck(layout, {"Test": ["CMD", "test", "-e", "/tmp/ok"], "Interval": 200_000_000, "Retries": 2})
    ref = f"{registry}/health/{uuid.uuid4().hex[:8]}:1"
    subprocess.run(["skopeo", "--insecure-policy", "copy", "--quiet", "--dest-tls-verify=false",
                    f"oci:{layout}:{LAYOUT_TAG}", f"docker://{ref}"], check=True, capture_output=True)
    return ref


def test_a_healthy_container_goes_from_starting_to_healthy(dcli: DockerCli, busybox_image: str) -> None:
    name = unique("ok")
    dcli.ok("run", "-d", "--name", name, "--health-cmd", "echo fine", *FAST, "--health-retries", "2",
            busybox_image, "sleep", "60")
    first = health(dcli, name)
    assert first["Status"] in ("starting", "healthy")
    h = wait_for(lambda: (x := health(dcli, name)) and x["Status"] == "healthy" and x)
    assert h["FailingStreak"] == 0
    entry = h["Log"][-1]
    assert entry["ExitCode"] == 0 and entry["Output"] == "fine\n" and entry["End"] >= entry["Start"]
    wait_for(lambda: len(health(dcli, name)["Log"]) == 5)  # the last five probes only
    config = dcli.inspect(name)[0]["Config"]["Healthcheck"]
    assert config == {"Test": ["CMD-SHELL", "echo fine"], "Interval": 200_000_000, "Timeout": 2_000_000_000,
                      "Retries": 2}
    assert "(healthy)" in dcli.ok("ps", "--filter", f"name={name}", "--format", "{{.Status}}")
    assert dcli.lines("ps", "--filter", "health=healthy", "--format", "{{.Names}}") == [name]
    assert dcli.lines("ps", "--filter", "health=unhealthy", "--format", "{{.Names}}") == []


def test_a_failing_check_makes_it_unhealthy_with_streak_log_and_events(dcli: DockerCli, busybox_image: str) -> None:
    name = unique("bad")
    seen: list[str] = []
    watcher = subprocess.Popen([DOCKER, "events", "--filter", "event=health_status", "--format", "{{.Action}}"],
                               stdout=subprocess.PIPE, text=True, env=dcli.env)
    try:
        reader = threading.Thread(target=lambda: seen.extend(watcher.stdout or []), daemon=True)  # type: ignore[arg-type]
        reader.start()
        dcli.ok("run", "-d", "--name", name, "--health-cmd", "test -e /tmp/ok || { echo missing; exit 3; }", *FAST,
                "--health-retries", "2", busybox_image, "sleep", "60")
        h = wait_for(lambda: (x := health(dcli, name)) and x["Status"] == "unhealthy" and x)
        assert h["FailingStreak"] >= 2 and h["Log"][-1]["ExitCode"] == 3 and h["Log"][-1]["Output"] == "missing\n"
        assert "(unhealthy)" in dcli.ok("ps", "--filter", f"name={name}", "--format", "{{.Status}}")
        dcli.ok("exec", name, "touch", "/tmp/ok")
        h = wait_for(lambda: (x := health(dcli, name)) and x["Status"] == "healthy" and x)
        assert h["FailingStreak"] == 0
        wait_for(lambda: "health_status: unhealthy\n" in seen and "health_status: healthy\n" in seen)
    finally:
        watcher.kill()
        watcher.wait()


def test_a_check_that_outlives_its_timeout_fails(dcli: DockerCli, busybox_image: str) -> None:
    name = unique("slow")
    dcli.ok("run", "-d", "--name", name, "--health-cmd", "sleep 5", "--health-interval", "200ms",
            "--health-timeout", "300ms", "--health-retries", "1", busybox_image, "sleep", "60")
    h = wait_for(lambda: (x := health(dcli, name)) and x["Status"] == "unhealthy" and x)
    assert h["Log"][-1]["ExitCode"] == -1 and "timeout" in h["Log"][-1]["Output"]


def test_the_image_healthcheck_applies_and_no_healthcheck_turns_it_off(dcli: DockerCli, healthcheck_image: str) -> None:
    name, off = unique("img"), unique("off")
    dcli.ok("run", "-d", "--name", name, healthcheck_image, "sh", "-c", "touch /tmp/ok; sleep 60")
    assert dcli.inspect(name)[0]["Config"]["Healthcheck"]["Test"] == ["CMD", "test", "-e", "/tmp/ok"]
    wait_for(lambda: health(dcli, name).get("Status") == "healthy")
    dcli.ok("run", "-d", "--name", off, "--no-healthcheck", healthcheck_image, "sleep", "60")
    inspected = dcli.inspect(off)[0]
    # as Docker merges: the test is NONE, the image's other settings stay
    assert inspected["Config"]["Healthcheck"]["Test"] == ["NONE"] and "Health" not in inspected["State"]


@pytest.mark.parametrize(("flags", "field"), [
    (["--health-cmd", "true", "--health-interval", "10ms"], "Healthcheck.Interval"),
    (["--health-cmd", "true", "--health-timeout", "48h"], "Healthcheck.Timeout"),
    (["--health-cmd", "true", "--health-retries", "5000"], "Healthcheck.Retries"),
    (["--health-cmd", "true", "--health-start-interval", "1ms"], "Healthcheck.StartInterval"),
])
def test_out_of_range_settings_are_refused_naming_the_field(dcli: DockerCli, busybox_image: str, flags: list[str],
                                                            field: str) -> None:
    r = dcli("create", *flags, busybox_image, "true")
    assert r.returncode != 0 and field in r.stderr


def test_sdk_sees_health_and_refuses_a_bad_test(server: Server, dcli: DockerCli, busybox_image: str,
                                                tmp_path: Path) -> None:
    sdk = sdk_client(server, dcli.tenant, tmp_path / "sdk")
    try:
        c = sdk.containers.run(busybox_image, ["sleep", "60"], detach=True, name=unique("sdk"),
                               healthcheck={"test": ["CMD", "true"], "interval": 200_000_000, "start_period": 10**9})
        wait_for(lambda: (c.reload(), c.attrs["State"]["Health"]["Status"] == "healthy")[1])
        assert c.health == "healthy"
        with pytest.raises(docker.errors.APIError) as caught:
            sdk.containers.create(busybox_image, ["true"], healthcheck={"test": ["CMD-SHELL"]})
        assert caught.value.status_code == 400 and "Healthcheck.Test" in str(caught.value)
    finally:
        sdk.close()


@pytest.mark.parametrize("runtime", RUNTIME_CLASSES)
def test_sdk_runs_the_images_healthcheck_in_each_runtime_class(server: Server, healthcheck_image: str, runtime: str,
                                                              tmp_path: Path) -> None:
    tenant = class_tenant(server, "healthimg", runtime)
    with cleaned(server, tenant):
        sdk = sdk_client(server, tenant, tmp_path / "sdk")
        try:
            image = sdk.images.pull(healthcheck_image)
            assert image.attrs["Config"]["Healthcheck"]["Test"] == ["CMD", "test", "-e", "/tmp/ok"]
            c = sdk.containers.run(healthcheck_image, ["sh", "-c", "sleep 1; touch /tmp/ok; sleep 60"], detach=True)
            c.reload()
            assert c.attrs["Config"]["Healthcheck"]["Retries"] == 2 and c.health in ("starting", "unhealthy")
            wait_for(lambda: (c.reload(), c.health == "healthy")[1])
            c.exec_run(["rm", "/tmp/ok"])  # two failures in a row (the image's --retries=2): unhealthy
            wait_for(lambda: (c.reload(), c.health == "unhealthy")[1])
            assert c.attrs["State"]["Health"]["FailingStreak"] >= 2
        finally:
            sdk.close()


def test_native_api_and_seabox_ps_show_the_health(server: Server, dcli: DockerCli, busybox_image: str) -> None:
    with native(server, dcli.tenant) as api:
        r = api.post("/v1/containers", params={"start": "true"}, json={
            "image": busybox_image, "cmd": ["sleep", "60"], "name": unique("native"),
            "healthcheck": {"test": ["CMD", "true"], "interval": 0.2, "retries": 1}})
        assert r.status_code == 201, r.text
        cid = r.json()["id"]
        h = wait_for(lambda: (x := api.get(f"/v1/containers/{cid}").json()["status"]["health"])
                     and x["status"] == "healthy" and x)
        assert h["failing_streak"] == 0 and h["log"][-1]["exit_code"] == 0
        assert "(healthy)" in server.cli("ps", tenant=dcli.tenant).stdout
        bad = api.post("/v1/containers", json={"image": busybox_image, "healthcheck": {"test": ["CMD"], "interval": 0.01}})
        assert bad.status_code == 400 and "healthcheck" in bad.text
