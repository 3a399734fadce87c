"""The fleet on real NATS servers: two daemons as two hosts, the broker killed,
paused and clustered, and nothing lost or doubled on the way."""

from __future__ import annotations

import json
import signal
import time

import pytest

from tests.integration.conftest import ROOT
from tests.integration.fleet_rig import Fleet, Host, wait_until

pytestmark = pytest.mark.skipif(not ROOT, reason="needs root and the real kernel")


def own_events(host: Host, observer: Host | None = None) -> list[tuple[int, str, str]]:
    """``host``'s events as the stream has them (id, container, state), in stream order."""
    return [(int(e["id"]), str(e["container"]), str(e["to"]))  # type: ignore[call-overload]
            for e in (observer or host).fleet_events() if e["host"] == host.name]


def journal_events(host: Host) -> list[tuple[int, str, str]]:
    return [(int(e["id"]), str(e["container"]), str(e["to"]))  # type: ignore[call-overload]
            for e in host.journal()]


def assert_all_published_once(host: Host, observer: Host | None = None) -> None:
    """The stream holds every event of ``host``'s journal, once each, in order
    (asked until the fleet answers: a cluster that lost its leader elects one)."""
    expected = journal_events(host)

    def complete() -> bool:
        try:
            return len(own_events(host, observer)) >= len(expected)
        except AssertionError:
            return False

    wait_until(complete, 60, f"{host.name}'s {len(expected)} events in the stream")
    assert own_events(host, observer) == expected


def fleet_states(host: Host) -> dict[str, str]:
    listing = json.loads(host.ok("ls", "--fleet", "--json"))
    return {f"{c['host']}:{c['name']}": c["state"] for c in listing["containers"]}


def test_a_wait_on_another_host_sees_a_container_made_after_it_began(fleet: Fleet) -> None:
    nats = fleet.server()
    a, b = fleet.host("host-a", nats.url), fleet.host("host-b", nats.url)
    # The name does not exist anywhere yet when the wait starts.
    with b.background("wait", "-n", "host-a:web", "-s", "RUNNING", "-t", "30", "--json") as wait:
        time.sleep(0.5)
        assert wait.poll() is None, wait.communicate()
        a.create("web")
        a.ok("start", "-n", "web")
        out, err = wait.communicate(timeout=30)
    assert wait.returncode == 0, err
    assert json.loads(out) == {"host-a:web": "RUNNING"}

    # Both hosts list the fleet alike; a wait that already holds returns at once.
    wait_until(lambda: fleet_states(b).get("host-a:web") == "RUNNING", what="b lists web")
    assert fleet_states(a)["host-a:web"] == fleet_states(b)["host-a:web"] == "RUNNING"
    b.create("app")
    wait_until(lambda: fleet_states(a).get("host-b:app") == "STOPPED", what="a lists app")
    listing = json.loads(b.ok("ls", "--fleet", "--json"))
    assert listing["connected"] is True
    assert {h: v["lost"] for h, v in listing["hosts"].items()} == {"host-a": False,
                                                                  "host-b": False}
    table = b.ok("ls", "--fleet")
    assert table.splitlines()[0].split() == ["HOST", "NAME", "STATE", "HEALTH", "PID"]
    assert any(line.split()[:3] == ["host-a", "web", "RUNNING"] for line in table.splitlines())
    assert b.run("wait", "-n", "host-a:web", "-s", "RUNNING|FROZEN", "-t", "5").returncode == 0

    # A local and a remote name in one wait: both must get there.
    r = b.run("wait", "-n", "app", "-n", "host-a:web", "-s", "STOPPED", "-t", "1")
    assert r.returncode == 1
    assert "timed out after 1 s waiting for host-a:web" in r.stderr
    a.ok("stop", "-n", "web", "-k")
    assert json.loads(b.ok("wait", "-n", "app", "-n", "host-a:web", "-s", "STOPPED", "-t", "10",
                           "--json")) == {"app": "STOPPED", "host-a:web": "STOPPED"}

    # monitor --fleet: both hosts' events, with their host, from the stream.
    text = b.ok("monitor", "--fleet", "--since", "0", "--no-follow")
    assert "'host-a:web' changed state to [RUNNING]" in text
    assert "'host-a:web' was killed by signal [9]" in text
    assert_all_published_once(a, observer=b)
    everything = b.fleet_events()
    assert [e["seq"] for e in everything] == list(range(1, len(everything) + 1))
    # By time, and by stream sequence (after it), as monitor's --since takes them.
    recent = b.ok("monitor", "--fleet", "--since", "10m", "--no-follow", "--json")
    assert [json.loads(line) for line in recent.splitlines()] == everything
    tail = b.ok("monitor", "--fleet", "--since", str(everything[-2]["seq"]), "--no-follow",
                "--json", "-n", "^host-a:")
    assert [json.loads(line) for line in tail.splitlines()] == everything[-1:]

    # Following: a new event of host-a reaches a monitor on host-b.
    with b.background("monitor", "--fleet", "--json") as follow:
        time.sleep(0.5)  # its consumer is made
        a.ok("start", "-n", "web")
        assert follow.stdout is not None
        first = json.loads(follow.stdout.readline())
    assert (first["host"], first["container"], first["to"]) == ("host-a", "web", "STARTING")
    assert first["seq"] == int(everything[-1]["seq"]) + 1  # type: ignore[call-overload]


HEALTH_RULE = """
[[rule]]
name = "probe"
containers = "svc"
health = { exec = ["/bin/sh", "-c", "test -e /tmp/HEALTHY_FILE"], every = "200ms", retries = 1 }
"""


def test_a_wait_for_another_hosts_container_to_be_healthy(fleet: Fleet) -> None:
    nats = fleet.server()
    a = fleet.host("host-a", nats.url, start=False)
    flag = a.env.base / "healthy"
    (a.rules_dir / "health.toml").write_text(HEALTH_RULE.replace("/tmp/HEALTHY_FILE",
                                                                 str(flag)))
    a.start()
    b = fleet.host("host-b", nats.url)
    a.create("svc")
    a.ok("start", "-n", "svc")
    r = b.run("wait", "-n", "host-a:svc", "--healthy", "-t", "2")
    assert r.returncode == 1
    assert "timed out after 2 s waiting for host-a:svc to be RUNNING and healthy" in r.stderr
    flag.touch()
    assert json.loads(b.ok("wait", "-n", "host-a:svc", "--healthy", "-t", "20", "--json")) == {
        "host-a:svc": "RUNNING"}
    assert "healthy" in b.ok("ls", "--fleet")


def test_a_destroyed_container_leaves_the_fleet_and_a_lost_host_is_marked(fleet: Fleet) -> None:
    nats = fleet.server()
    a, b = fleet.host("host-a", nats.url), fleet.host("host-b", nats.url)
    a.create("gone")
    wait_until(lambda: "host-a:gone" in fleet_states(b), what="b lists gone")
    a.ok("destroy", "-n", "gone")
    wait_until(lambda: "host-a:gone" not in fleet_states(b), what="b drops gone")
    a.create("kept")
    wait_until(lambda: "host-a:kept" in fleet_states(b), what="b lists kept")
    a.kill()  # no more heartbeats from host-a
    listing = json.loads(b.ok("ls", "--fleet", "--json"))
    assert listing["hosts"]["host-a"]["lost"] is False
    wait_until(lambda: json.loads(b.ok("ls", "--fleet", "--json"))["hosts"]["host-a"]["lost"],
               25, "host-a marked lost")
    assert "host-a (lost)" in b.ok("ls", "--fleet")


RULE = """
[[rule]]
name = "follow-web"
containers = "host-a:web"
on = "RUNNING"
actions = [{ start = "app" }]
"""


def starts_by_rule(host: Host, name: str, rule: str) -> int:
    return sum(1 for e in host.journal() if e["container"] == name and e["to"] == "STARTING"
               and e["cause"] == f"rule:{rule}")


def test_a_rule_on_another_hosts_container_fires_once_per_event(fleet: Fleet) -> None:
    nats = fleet.server()
    a = fleet.host("host-a", nats.url)
    b = fleet.host("host-b", nats.url, start=False)
    (b.rules_dir / "follow.toml").write_text(RULE)
    b.start()
    b.create("app")
    a.create("web")
    a.ok("start", "-n", "web")
    assert json.loads(b.ok("wait", "-n", "app", "-s", "RUNNING", "-t", "20", "--json")) == {
        "app": "RUNNING"}
    assert starts_by_rule(b, "app", "follow-web") == 1

    # b restarts: the events it already handed to its rules fire nothing again.
    b.ok("stop", "-n", "app", "-k")
    b.kill()
    b.start()
    b.ok("wait", "-n", "host-a:web", "-s", "RUNNING", "-t", "10")
    time.sleep(1.0)  # time enough for a replayed event to have started app
    assert b.ok("wait", "-n", "app", "-s", "STOPPED", "-t", "1") == ""
    assert starts_by_rule(b, "app", "follow-web") == 1

    # Events made while the broker is away fire their rules once it is back.
    nats.kill()
    a.ok("stop", "-n", "web", "-k")
    a.ok("start", "-n", "web")
    nats.start()
    assert json.loads(b.ok("wait", "-n", "app", "-s", "RUNNING", "-t", "30", "--json")) == {
        "app": "RUNNING"}
    assert starts_by_rule(b, "app", "follow-web") == 2
    assert "rule_fired_remote" in b.log()


def test_the_broker_killed_and_restarted_while_containers_change(fleet: Fleet) -> None:
    nats = fleet.server()
    a, b = fleet.host("host-a", nats.url), fleet.host("host-b", nats.url)
    for name in ("c1", "c2"):
        a.create(name)
        a.ok("start", "-n", name)
    nats.kill()
    # The daemon goes on alone, and says so.
    wait_until(lambda: "SINGLE HOST" in a.ok("info", "-n", "c1"), 10, "info says single host")
    for _ in range(3):
        for name in ("c1", "c2"):
            a.ok("stop", "-n", name, "-k")
            a.ok("start", "-n", name)
    a.ok("freeze", "-n", "c1")
    assert "fleet_unreachable" in a.log()
    nats.start()  # same port, same store
    wait_until(lambda: "connected to" in a.ok("info", "-n", "c1"), 20, "info says connected")
    assert_all_published_once(a, observer=b)
    wait_until(lambda: fleet_states(b).get("host-a:c1") == "FROZEN", what="b sees c1 FROZEN")
    assert b.ok("wait", "-n", "host-a:c2", "-s", "RUNNING", "-t", "5") == ""


def test_a_daemon_killed_between_publish_and_acknowledgement_loses_and_doubles_nothing(
        fleet: Fleet) -> None:
    nats = fleet.server()
    a = fleet.host("host-a", nats.url)
    a.create("web")
    a.ok("start", "-n", "web")
    assert_all_published_once(a)
    published = len(own_events(a))

    nats.signal(signal.SIGSTOP)
    try:
        a.ok("stop", "-n", "web", "-k")  # STOPPING, STOPPED: the first is sent, unacknowledged
        wait_until(lambda: nats.received_but_unread() > 0, 10, "the publish in the broker's queue")
        a.kill()
    finally:
        nats.signal(signal.SIGCONT)
    a.start()
    assert_all_published_once(a)
    events = own_events(a)
    assert len(events) == published + 2
    assert len({e[0] for e in events}) == len(events)
    # It learnt from the stream, not from the de-duplication window alone.
    assert "fleet_resumed_from_stream" in a.log()


def test_a_three_server_cluster_losing_one_loses_nothing(fleet: Fleet) -> None:
    members = fleet.cluster(3)
    urls = [m.url for m in members]
    a = fleet.host("host-a", ",".join(urls), "--nats-replicas", "3")
    b = fleet.host("host-b", ",".join(reversed(urls)), "--nats-replicas", "3")
    a.create("web")
    a.ok("start", "-n", "web")
    first = a.ok("info", "-n", "web")
    victim = next(m for m in members if f"connected to {m.url}" in first)
    victim.kill()
    for _ in range(5):
        a.ok("stop", "-n", "web", "-k")
        a.ok("start", "-n", "web")
    wait_until(lambda: f"connected to {victim.url}" not in a.ok("info", "-n", "web")
               and "connected to" in a.ok("info", "-n", "web"), 30, "a on another server")
    assert_all_published_once(a, observer=b)
    assert b.ok("wait", "-n", "host-a:web", "-s", "RUNNING", "-t", "10") == ""


def test_a_rule_added_later_fires_on_what_comes_after_it_only(fleet: Fleet) -> None:
    nats = fleet.server()
    a, b = fleet.host("host-a", nats.url), fleet.host("host-b", nats.url)
    b.create("app")
    a.create("web")
    a.ok("start", "-n", "web")  # before any rule on host-b names host-a
    b.ok("wait", "-n", "host-a:web", "-s", "RUNNING", "-t", "10")
    (b.rules_dir / "follow.toml").write_text(RULE)
    wait_until(lambda: "follow-web" in b.ok("rules", "list"), what="b loads the rule")
    time.sleep(1.0)  # time enough for the old RUNNING to have started app, were it read
    assert b.ok("wait", "-n", "app", "-s", "STOPPED", "-t", "1") == ""
    a.ok("stop", "-n", "web", "-k")
    a.ok("start", "-n", "web")
    assert json.loads(b.ok("wait", "-n", "app", "-s", "RUNNING", "-t", "20", "--json")) == {
        "app": "RUNNING"}
    assert starts_by_rule(b, "app", "follow-web") == 1


def test_a_journal_that_lost_its_last_commits_numbers_past_the_stream(fleet: Fleet) -> None:
    nats = fleet.server()
    a = fleet.host("host-a", nats.url)
    a.create("web")
    a.ok("start", "-n", "web")
    a.ok("stop", "-n", "web", "-k")
    assert_all_published_once(a)
    before = own_events(a)
    a.kill()
    # As if the power went before the last WAL commits reached the disk:
    # the stream has events 3 and 4, the journal no longer does.
    import sqlite3

    db = sqlite3.connect(a.env.paths.lxcpath / ".journal.db")
    with db:
        db.execute("DELETE FROM events WHERE id > 2")
        db.execute("UPDATE meta SET value = substr(value, 1, instr(value, ':')) || '2' "
                   "WHERE key = 'nats_acked'")
    db.close()
    a.start()
    a.ok("start", "-n", "web")
    # The restarted daemon sees web STOPPED, which its journal last had
    # RUNNING (STOPPING, STOPPED: recovered), then the start: 4 new events.
    wait_until(lambda: len(own_events(a)) >= len(before) + 4, 20, "the new events published")
    after = own_events(a)
    assert after[:len(before)] == before
    assert [e[0] for e in after[len(before):]] == [5, 6, 7, 8]  # numbered past the stream's
    mine = journal_events(a)
    assert [e[0] for e in mine] == [1, 2, 5, 6, 7, 8]
    assert [e for e in after if e in mine] == mine  # every one of them, once, in order
    log_text = a.log()
    assert "journal_behind_stream" in log_text


def test_a_state_held_for_an_instant_reaches_a_wait_on_another_host(fleet: Fleet) -> None:
    nats = fleet.server()
    a, b = fleet.host("host-a", nats.url), fleet.host("host-b", nats.url)
    a.create("web")
    a.ok("start", "-n", "web")
    for _ in range(3):
        b.ok("wait", "-n", "host-a:web", "-s", "RUNNING", "-t", "10")
        # FREEZING lasts some tens of microseconds for an idle container:
        # FROZEN is published right after it.
        with b.background("wait", "-n", "host-a:web", "-s", "FREEZING", "-t", "10",
                          "--json") as wait:
            time.sleep(0.3)
            a.ok("freeze", "-n", "web")
            out, err = wait.communicate(timeout=15)
        assert wait.returncode == 0, err
        assert json.loads(out) == {"host-a:web": "FREEZING"}
        a.ok("unfreeze", "-n", "web")
