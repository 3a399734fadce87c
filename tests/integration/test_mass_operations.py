"""Mass operations: several -n and globs in one request, partial failures."""

from __future__ import annotations

import json

from tests.integration.conftest import Env, needs_root

pytestmark = needs_root


def states(lxc: Env) -> dict[str, str]:
    return {c["name"]: c["state"] for c in json.loads(lxc.ok("ls", "--json"))}


def define(lxc: Env, names: list[str], command: str = "sleep 100000") -> None:
    for name in names:
        config = lxc.config(f"lxc.init.cmd = {command}\n", name=f"{name}.conf")
        lxc.ok("create", "-n", name, "-f", str(config))


def test_globs_and_names_in_one_call_with_one_line_per_failure(lxc: Env) -> None:
    define(lxc, [f"web-{i}" for i in range(6)] + ["db", "cache"])
    define(lxc, ["broken"], command="/no/such/program")
    lxc.ok("start", "-n", "web-0")  # already running: its start fails

    r = lxc.run("start", "-n", "web-*", "-n", "db", "-n", "broken", "-n", "api-*",
                "-n", "ghost")
    assert r.returncode == 1
    lines = sorted(r.stderr.splitlines())
    assert len(lines) == 4, r.stderr
    assert lines[0].startswith("lxcflow start: api-*: no container matches")
    assert lines[1].startswith("lxcflow start: broken: ")
    assert "no/such/program" in lines[1]
    assert lines[2].startswith("lxcflow start: ghost: ")
    assert "does not exist" in lines[2]
    assert lines[3].startswith("lxcflow start: web-0: ")
    assert "already RUNNING" in lines[3]
    assert states(lxc) == {**{f"web-{i}": "RUNNING" for i in range(6)}, "db": "RUNNING",
                           "cache": "STOPPED", "broken": "STOPPED"}

    r = lxc.run("freeze", "-n", "web-[0-2]", "-n", "cache")
    assert (r.returncode, r.stderr.count("\n")) == (1, 1)
    assert "cache" in r.stderr
    assert "not RUNNING" in r.stderr
    assert [n for n, s in states(lxc).items() if s == "FROZEN"] == ["web-0", "web-1", "web-2"]
    r = lxc.run("unfreeze", "-n", "web-?")  # web-3..5 are not FROZEN: each a failure
    assert r.returncode == 1
    assert sorted(ln.split(":")[1].strip() for ln in r.stderr.splitlines()) == [
        "web-3", "web-4", "web-5"]
    assert "FROZEN" not in states(lxc).values()  # the other three thawed all the same
    # All succeed: exit 0, nothing printed.
    r = lxc.run("kill", "-n", "web-*", "-n", "db", "-s", "CONT")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    r = lxc.run("stop", "-k", "-n", "*")
    assert r.returncode == 1  # cache and broken were not running
    assert sorted(ln.split(":")[1].strip() for ln in r.stderr.splitlines()) == [
        "broken", "cache"]
    assert set(states(lxc).values()) == {"STOPPED"}
    lxc.ok("destroy", "-n", "web-*", "-n", "db")
    assert sorted(states(lxc)) == ["broken", "cache"]


def test_bad_mass_input(lxc: Env) -> None:
    define(lxc, ["a1", "a2"])
    r = lxc.run("start", "-n", "a*", "--", "sh")
    assert (r.returncode, r.stderr) == (
        2, "lxcflow start: -f or a command starts one container: give one -n NAME\n")
    r = lxc.run("stop", "-k", "-n", "a1", "-n", "bad/name")
    assert r.returncode == 1
    bad, a1 = r.stderr.splitlines()  # what is wrong with the names first
    assert bad.startswith("lxcflow stop: bad/name: invalid container name")
    assert a1 == "lxcflow stop: a1: container 'a1' is not running"
    assert states(lxc) == {"a1": "STOPPED", "a2": "STOPPED"}
