"""The `seabox cron` commands against a fake /v1 server: request bodies, options around NAME and IMAGE, tables."""

from __future__ import annotations

import re

from tests.unit import test_cli
from tests.unit.test_cli import FakeServer, cli

server = test_cli.server  # the fake server fixture

RUN = {"id": 7, "cron": "tick", "scheduled_at": "2026-12-02T06:00:02+00:00", "trigger": "schedule",
       "status": "failed", "container": "tick-1796191202", "container_id": "c" * 64,
       "started_at": "2026-12-02T06:00:02.100000+00:00", "finished_at": "2026-12-02T06:00:03+00:00",
       "exit_code": 3, "log_tail": "first line\nlast line\n", "message": ""}
CRON = {"name": "tick", "tenant": "t1", "suspended": False, "next_run": "2026-12-02T06:00:04+00:00",
        "last_result": RUN, "created_at": "2026-12-02T05:00:00+00:00",
        "spec": {"schedule": "*/2 * * * * *", "tz": "Europe/Paris", "concurrency": "forbid", "timeout": 60,
                 "size": "s4", "env": [], "image": "busybox", "cmd": None}}


def test_create_takes_options_around_name_and_passes_the_command_verbatim(server: FakeServer) -> None:
    server.on("POST", "/v1/crons", CRON, status=201)
    result = cli("cron", "create", "tick", "--schedule", "*/2 * * * * *", "--tz", "Europe/Paris",
                 "--concurrency", "forbid", "--timeout", "60", "-e", "A=1", "busybox", "sh", "-c", "exit 3", "-e", "x")
    assert result.exit_code == 0 and result.stdout == "tick\n", result.output
    assert server.calls[0].json() == {"name": "tick", "image": "busybox", "schedule": "*/2 * * * * *",
                                      "tz": "Europe/Paris", "concurrency": "forbid", "timeout": 60, "env": ["A=1"],
                                      "cmd": ["sh", "-c", "exit 3", "-e", "x"]}
    assert cli("cron", "create", "tick", "busybox").exit_code == 2  # --schedule is required: nothing sent
    assert cli("cron", "create", "tick", "--schedule", "* * * * *", "--timeout", "0", "busybox").exit_code == 2
    assert len(server.calls) == 1


def test_ls_and_history_show_their_columns(server: FakeServer) -> None:
    server.on("GET", "/v1/crons", [CRON, {**CRON, "name": "nap", "suspended": True, "next_run": None,
                                          "last_result": None}])
    header, first, second = cli("cron", "ls").stdout.splitlines()
    assert re.split(r"\s{2,}", header) == ["NAME", "SCHEDULE", "NEXT RUN", "LAST RESULT", "IMAGE"]
    assert re.split(r"\s{2,}", first) == ["tick", "*/2 * * * * * (Europe/Paris)", "2026-12-02 06:00:04",
                                          "failed (3)", "busybox"]
    assert "suspended" in second
    server.on("GET", "/v1/crons/tick/history", [RUN])
    header, row = cli("cron", "history", "tick", "--tail", "5").stdout.splitlines()
    assert re.split(r"\s{2,}", header) == ["CONTAINER", "SCHEDULED", "START", "END", "EXIT CODE", "STATUS", "TRIGGER",
                                           "LOG TAIL"]
    assert re.split(r"\s{2,}", row) == ["tick-1796191202", "2026-12-02 06:00:02", "2026-12-02 06:00:02",
                                        "2026-12-02 06:00:03", "3", "failed", "schedule", "last line"]
    assert server.called("GET", "/v1/crons/tick/history")[0].query == {"tail": "5"}


def test_run_suspend_resume_and_rm_requests(server: FakeServer) -> None:
    server.on("POST", "/v1/crons/tick/run", {**RUN, "status": "running", "trigger": "manual"}, status=201)
    server.on("POST", "/v1/crons/tick/suspend", CRON)
    server.on("POST", "/v1/crons/tick/resume", CRON)
    server.on("DELETE", "/v1/crons/tick", status=204)
    server.on("DELETE", "/v1/crons/gone", {"message": "no such cron: gone", "field": "cron"}, status=404)
    assert cli("cron", "run", "tick").stdout == "tick-1796191202\n"
    server.on("POST", "/v1/crons/gone/run", {**RUN, "status": "failed", "message": "could not create its container: "
                                             "no such image: busybox"}, status=201)
    result = cli("cron", "run", "gone")
    assert result.exit_code == 1 and "no such image: busybox" in result.stderr
    assert cli("cron", "suspend", "tick").stdout == "tick\n"
    assert cli("cron", "resume", "tick").stdout == "tick\n"
    result = cli("cron", "rm", "tick", "gone")
    assert result.exit_code == 1 and result.stdout == "tick\n" and "no such cron: gone" in result.stderr
