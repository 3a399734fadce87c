"""NATS's wire protocol, URLs and credentials, without a server."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nkeys
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lxcflow.nats import protocol
from lxcflow.nats.creds import CredsError, load
from lxcflow.nats.protocol import Control, Info, Msg, Parser
from lxcflow.nats.servers import Server, parse_servers

STREAM = (
    b'INFO {"server_id":"X","version":"2.9.10","nonce":"abc"}\r\n'
    b"PING\r\n"
    b"MSG a.b 3 5\r\nhello\r\n"
    b"MSG a.b 3 _INBOX.x 0\r\n\r\n"
    b"HMSG lxcflow.event.h.web 2 $JS.ACK.S.C.1.7.1.99.0 32 35\r\n"
    b"NATS/1.0\r\nNats-Msg-Id: h:e:1\r\n\r\n{}!\r\n"
    b"HMSG _INBOX.p 2  75 75\r\nNATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 2\r\n"
    b"Nats-Last-Stream: 3\r\n\r\n\r\n"
    b"-ERR 'Authorization Violation'\r\n"
)


def expected_frames() -> list[protocol.Frame]:
    return [
        Info({"server_id": "X", "version": "2.9.10", "nonce": "abc"}),
        Control("PING"),
        Msg("a.b", 3, None, b"hello"),
        Msg("a.b", 3, "_INBOX.x", b""),
        Msg("lxcflow.event.h.web", 2, "$JS.ACK.S.C.1.7.1.99.0", b"{}!",
            {"Nats-Msg-Id": "h:e:1"}),
        Msg("_INBOX.p", 2, None, b"", {"Nats-Last-Consumer": "2", "Nats-Last-Stream": "3"},
            100, "Idle Heartbeat"),
        Control("-ERR", "Authorization Violation"),
    ]


def test_every_frame_kind_is_read() -> None:
    assert Parser().feed(STREAM) == expected_frames()


@given(st.lists(st.integers(min_value=1, max_value=len(STREAM) - 1), max_size=12))
def test_frames_split_anywhere_read_the_same(cuts: list[int]) -> None:
    parser, frames, start = Parser(), [], 0
    for cut in [*sorted(set(cuts)), len(STREAM)]:
        frames += parser.feed(STREAM[start:cut])
        start = cut
    assert frames == expected_frames()


def test_nonsense_is_a_protocol_violation() -> None:
    with pytest.raises(protocol.ProtocolViolation):
        Parser().feed(b"HELLO there\r\n")
    with pytest.raises(protocol.ProtocolViolation):
        Parser().feed(b"MSG a.b x\r\n")
    with pytest.raises(protocol.ProtocolViolation):
        Parser().feed(b"x" * (protocol.MAX_CONTROL_LINE + 1))
    with pytest.raises(protocol.ProtocolViolation):
        Parser().feed(b"MSG a x 1\r\nX\r\n")  # a sid that is no number
    with pytest.raises(protocol.ProtocolViolation):
        Parser().feed(b"HMSG a 1 9 5\r\n")  # headers longer than the whole


def test_jetstream_delivery_metadata_in_both_reply_forms() -> None:
    from lxcflow.nats.jetstream import _ack_metadata

    assert _ack_metadata("$JS.ACK.S.C.1.7.3.99.0") == (7, 3, 99, 0)
    assert _ack_metadata("$JS.ACK.dom.acchash.S.C.1.7.3.99.5.rnd") == (7, 3, 99, 5)
    assert _ack_metadata("_INBOX.x") is None
    assert _ack_metadata("$JS.ACK.S.C.1") is None


def test_only_a_refusal_is_a_refusal() -> None:
    from lxcflow.nats.connection import NatsRefused, NatsUnavailable, _refusal_or_loss

    server = Server("h")
    assert isinstance(_refusal_or_loss(server, "Authorization Violation"), NatsRefused)
    assert isinstance(_refusal_or_loss(server, "User Authentication Revoked"), NatsRefused)
    # A CONNECT that came too late on a busy host: try again.
    assert isinstance(_refusal_or_loss(server, "Authentication Timeout"), NatsUnavailable)
    assert isinstance(_refusal_or_loss(server, "Stale Connection"), NatsUnavailable)


def test_commands_are_encoded_as_the_server_reads_them() -> None:
    assert protocol.publish("a", b"hi") == b"PUB a 2\r\nhi\r\n"
    assert protocol.publish("a", b"hi", reply="r") == b"PUB a r 2\r\nhi\r\n"
    headers = b"NATS/1.0\r\nNats-Msg-Id: x\r\n\r\n"
    assert protocol.publish("a", b"hi", headers={"Nats-Msg-Id": "x"}) == (
        b"HPUB a %d %d\r\n" % (len(headers), len(headers) + 2) + headers + b"hi\r\n")
    line, ping = protocol.connect({"verbose": False}).split(b"\r\n")[:2]
    assert line.startswith(b"CONNECT ")
    assert json.loads(line[8:]) == {"verbose": False}
    assert ping == b"PING"
    # What the client sends, the parser (the server's view aside) reads back.
    frame = Parser().feed(b"H" + protocol.publish("a", b"hi", reply="r", headers={"K": "v"})
                          .replace(b"HPUB a r", b"MSG a 1 r", 1))
    assert frame == [Msg("a", 1, "r", b"hi", {"K": "v"})]


@given(st.text(alphabet="abcXYZ019-_.=%: ", min_size=1, max_size=30))
def test_escaped_names_are_one_token_and_come_back(name: str) -> None:
    token = protocol.escape_token(name)
    # Only what a subject token and a KV key both allow (no ".", " ", "*", ">").
    assert all(ch.isascii() and (ch.isalnum() or ch in "-_=") for ch in token)
    assert protocol.unescape_token(token) == name


def test_a_dot_in_a_container_name_is_escaped() -> None:
    assert protocol.escape_token("web.1") == "web=2E1"
    assert protocol.escape_token("db_2-x") == "db_2-x"


def test_server_urls() -> None:
    assert parse_servers("nats://a, tls://u:p%40ss@b:4333,nats://tok@[::1]:5") == [
        Server("a"), Server("b", 4333, True, "u", "p@ss"), Server("::1", 5, token="tok")]
    assert str(Server("::1", 5, token="secret")) == "nats://[::1]:5"
    for bad, said in [("http://a", "scheme"), ("a:4222", "is not a URL"), ("nats://", "no host"),
                      ("nats://a:x", "Port could not be cast"), ("nats://a/x", "no path"),
                      ("nats://a,,nats://b", "empty URL")]:
        with pytest.raises(ValueError, match=said):
            parse_servers(bad)


def test_credentials_from_a_seed_or_a_creds_file(tmp_path: Path) -> None:
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    public = nkeys.from_seed(seed).public_key
    bare = tmp_path / "u.nk"
    bare.write_bytes(seed + b"\n")
    creds = tmp_path / "u.creds"
    creds.write_text("-----BEGIN NATS USER JWT-----\neyJ.jwt.x\n------END NATS USER JWT------\n\n"
                     "*** IMPORTANT ***\n\n-----BEGIN USER NKEY SEED-----\n" + seed.decode()
                     + "\n------END USER NKEY SEED------\n")
    signed = load(bare).sign("nonce-1")
    assert signed["nkey"] == public.decode()
    # The signature is the seed's, over the nonce: the server's check, by nkeys.
    import base64

    sig = base64.urlsafe_b64decode(signed["sig"] + "==")
    assert nkeys.from_seed(seed).verify(b"nonce-1", sig)
    from_file = load(creds)
    assert from_file.jwt == "eyJ.jwt.x"
    assert set(from_file.sign("n")) == {"jwt", "sig"}
    (tmp_path / "junk").write_text("hello\n")
    (tmp_path / "badseed").write_text("SUAAAA\n")
    for name, said in [("missing", "No such file"), ("junk", "no nkey seed"),
                       ("badseed", "the seed is invalid")]:
        with pytest.raises(CredsError, match=said):
            load(tmp_path / name)
