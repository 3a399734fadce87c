"""What a user gets for a bad NATS URL, refused credentials, a stream of the wrong
shape, a bad HOST:NAME and an unreachable broker: one line, the right exit code,
and a daemon that starts only when it should."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import nkeys
import pytest
import trio

from lxcflow.nats.connection import connect
from lxcflow.nats.jetstream import JetStream
from lxcflow.nats.servers import parse_servers
from tests.integration.conftest import ROOT, free_port
from tests.integration.fleet_rig import SLEEPER, Fleet, Host

pytestmark = pytest.mark.skipif(not ROOT, reason="needs root and the real kernel")


def user_seed() -> tuple[bytes, str]:
    """A new NATS user nkey: its seed and its public key."""
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    return seed, nkeys.from_seed(seed).public_key.decode()


def daemon(host: Host, *args: str) -> subprocess.CompletedProcess[str]:
    """``lxcflow daemon ARGS`` in the foreground; for the cases where it must not start."""
    return subprocess.run([sys.executable, "-m", "lxcflow", "daemon", *args], env=host.env.env,
                          capture_output=True, text=True, timeout=60)


def one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


@pytest.mark.parametrize(("args", "said"), [
    (("--nats", "http://127.0.0.1:4222"), "the scheme must be nats:// or tls://"),
    (("--nats", "127.0.0.1:4222"), "is not a URL"),
    (("--nats", "nats://127.0.0.1:99999"), "Port out of range"),
    (("--nats", "nats://127.0.0.1:4222,"), "empty URL"),
    (("--nats", "nats://127.0.0.1:4222", "--host", "a.b"), "invalid host name 'a.b'"),
    (("--host", "a"), "--host needs --nats"),
    (("--nats-replicas", "3"), "--nats-replicas needs --nats"),
    (("--nats", "nats://127.0.0.1:4222", "--nats-creds", "/nonexistent/x.creds"),
     "No such file or directory"),
    (("--nats", "nats://127.0.0.1:4222", "--nats-replicas", "7"), "give 1 to 5"),
])
def test_a_bad_nats_option_is_a_usage_error(fleet: Fleet, args: tuple[str, ...],
                                            said: str) -> None:
    host = fleet.host("h", "unused", start=False)
    r = daemon(host, *args)
    assert r.returncode == 2
    assert said in one_line(r.stderr)
    assert not host.env.paths.socket.exists()


def test_refused_credentials_keep_the_daemon_from_starting(fleet: Fleet, tmp_path: Path) -> None:
    seed, public = user_seed()
    other, _ = user_seed()
    nats = fleet.server(extra=f"authorization {{ users = [ {{ nkey: {public} }} ] }}\n")
    refused = tmp_path / "refused.nk"
    refused.write_bytes(other + b"\n")
    host = fleet.host("host-a", nats.url, start=False)
    r = daemon(host, "--nats", nats.url, "--host", "host-a", "--nats-creds", str(refused))
    assert r.returncode == 1
    assert "refused the credentials" in one_line(r.stderr)
    assert not host.env.paths.socket.exists()

    # Without any credentials, the same; checkconfig says it answers but refuses.
    r = daemon(host, "--nats", nats.url, "--host", "host-a")
    assert r.returncode == 1
    assert "Authorization Violation" in one_line(r.stderr)
    check = subprocess.run([sys.executable, "-m", "lxcflow", "checkconfig", "--nats", nats.url],
                           env=host.env.env, capture_output=True, text=True, timeout=60)
    assert f"NATS {nats.url}: answers, but {nats.url} refused the credentials" in check.stdout

    # The right seed, as a .creds-style file too, is taken.
    accepted = tmp_path / "user.creds"
    accepted.write_text("-----BEGIN USER NKEY SEED-----\n" + seed.decode()
                        + "\n------END USER NKEY SEED------\n")
    host.daemon_args = ("--nats-creds", str(accepted))
    host.start()
    host.create("web")
    host.ok("start", "-n", "web")
    assert [e["to"] for e in host.fleet_events()] == ["STARTING", "RUNNING"]


def test_a_stream_with_other_subjects_keeps_the_daemon_from_starting(fleet: Fleet) -> None:
    nats = fleet.server()

    async def squat() -> None:
        async with connect(parse_servers(nats.url)) as conn:
            await JetStream(conn).ensure_stream({"name": "LXCFLOW", "subjects": ["other.>"]})

    trio.run(squat)
    host = fleet.host("host-a", nats.url, start=False)
    r = daemon(host, "--nats", nats.url, "--host", "host-a")
    assert r.returncode == 1
    assert "stream LXCFLOW exists with subjects other.>, not lxcflow.event.>" in one_line(r.stderr)


def test_an_unreachable_broker_leaves_a_single_host_that_says_so(fleet: Fleet) -> None:
    url = f"nats://127.0.0.1:{free_port()}"  # nothing listens there
    host = fleet.host("host-a", url)
    host.create("web")
    host.ok("start", "-n", "web")
    info = host.ok("info", "-n", "web")
    assert f"host host-a: SINGLE HOST, NATS ({url}) unreachable since" in info
    assert "Connection refused" in info
    assert json.loads(host.ok("info", "-n", "web", "--json"))["fleet"]["connected"] is False
    assert "fleet_unreachable" in host.log()
    env = {**host.env.env, "LXCFLOW_NATS": url}
    check = subprocess.run([sys.executable, "-m", "lxcflow", "checkconfig"], env=env,
                           capture_output=True, text=True, timeout=60)
    assert f"NATS {url}: unreachable" in check.stdout
    assert "works as a single host" in check.stdout

    # Waits and monitors of the fleet fail with one line; local ones work.
    r = host.run("monitor", "--fleet", "--since", "0", "--no-follow")
    assert r.returncode == 1
    assert "not connected to NATS" in one_line(r.stderr)
    assert host.ok("wait", "-n", "web", "-s", "RUNNING", "-t", "5") == ""


def test_a_daemon_started_on_demand_joins_the_fleet_named_in_the_environment(
        fleet: Fleet) -> None:
    nats = fleet.server()
    host = fleet.host("unused", nats.url, start=False)
    host.env.env.update(LXCFLOW_NATS=nats.url, LXCFLOW_HOST="spawned-1")
    host.env.config(SLEEPER, "web.conf")
    host.env.ok("create", "-n", "web", "-f", str(host.env.base / "web.conf"))  # spawns it
    host.ok("start", "-n", "web")
    fleet_info = json.loads(host.ok("info", "-n", "web", "--json"))["fleet"]
    assert (fleet_info["host"], fleet_info["connected"]) == ("spawned-1", True)
    assert {e["host"] for e in host.fleet_events()} == {"spawned-1"}


def test_a_broker_without_jetstream_leaves_a_single_host_that_keeps_trying(
        fleet: Fleet) -> None:
    nats = fleet.server(jetstream=False)
    host = fleet.host("host-a", nats.url)
    host.create("web")
    host.ok("start", "-n", "web")
    info = host.ok("info", "-n", "web")
    assert "SINGLE HOST" in info
    assert "no responders for $JS.API.STREAM.INFO.LXCFLOW (is JetStream enabled?)" in info
    time.sleep(2)  # several attempts: the daemon lives on, and still answers
    assert host.proc is not None
    assert host.proc.poll() is None
    assert host.ok("wait", "-n", "web", "-s", "RUNNING", "-t", "5") == ""


def test_host_name_parts_are_checked_and_a_single_host_refuses_them(fleet: Fleet) -> None:
    host = fleet.host("h", "unused", start=False)
    env = host.env
    r = env.run("wait", "-n", "bad.host:web", "-s", "RUNNING", "-t", "1")
    assert r.returncode == 2
    assert "invalid host name 'bad.host'" in one_line(r.stderr)
    r = env.run("wait", "-n", "host-b:bad/name", "-s", "RUNNING", "-t", "1")
    assert r.returncode == 2
    assert "invalid container name 'bad/name'" in one_line(r.stderr)
    # A daemon without --nats (spawned on demand) has no fleet to ask.
    r = env.run("wait", "-n", "host-b:web", "-s", "RUNNING", "-t", "1")
    assert r.returncode == 1
    assert "this daemon is a single host" in one_line(r.stderr)
    r = env.run("ls", "--fleet")
    assert r.returncode == 1
    assert "start it with --nats URL" in one_line(r.stderr)


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a certificate it signed for 127.0.0.1: (ca, cert, key)."""
    ca_key, ca, key, csr, cert = (directory / n for n in ("ca.key", "ca.pem", "server.key",
                                                         "server.csr", "server.pem"))

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out",
            str(ca), "-days", "1", "-subj", "/CN=lxcflow test CA")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
            "-subj", "/CN=127.0.0.1")
    (directory / "san.ext").write_text("subjectAltName = IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
            "-CAcreateserial", "-out", str(cert), "-days", "1", "-extfile",
            str(directory / "san.ext"))
    return ca, cert, key


def test_tls_is_verified_against_the_trusted_authorities(fleet: Fleet, tmp_path: Path) -> None:
    ca, cert, key = make_certificates(tmp_path)
    nats = fleet.server(extra=f'tls {{ cert_file: "{cert}", key_file: "{key}" }}\n')
    url = f"tls://127.0.0.1:{nats.port}"
    host = fleet.host("host-a", url, start=False)
    # The server's certificate is signed by a CA nobody trusts here.
    r = daemon(host, "--nats", url, "--host", "host-a")
    assert r.returncode == 1
    assert "TLS: the server's certificate did not verify (unable to get local issuer " \
        "certificate)" in one_line(r.stderr)
    # Trusted (OpenSSL's SSL_CERT_FILE), it connects and publishes, encrypted.
    host.env.env["SSL_CERT_FILE"] = str(ca)
    host.start()
    host.create("web")
    host.ok("start", "-n", "web")
    assert [e["to"] for e in host.fleet_events()] == ["STARTING", "RUNNING"]
    assert f"connected to {url}" in host.ok("info", "-n", "web")
