"""Paths: options over environment over defaults, text for the client, Path for the daemon."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lxcflow.paths import DEFAULT_CGROUP_PARENT, DEFAULT_LXCPATH, DEFAULT_SOCKET, Paths

ROOT = str(Path(__file__).parents[2])


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("LXCFLOW_PATH", "LXCFLOW_SOCKET", "LXCFLOW_CGROUP"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_options_win_over_the_environment_which_wins_over_defaults(
    no_env: pytest.MonkeyPatch,
) -> None:
    p = Paths.from_env()
    assert (str(p.lxcpath), p.socket_address, p.cgroup_parent) == (
        DEFAULT_LXCPATH, DEFAULT_SOCKET, DEFAULT_CGROUP_PARENT)
    no_env.setenv("LXCFLOW_PATH", "/env/lib")
    no_env.setenv("LXCFLOW_SOCKET", "/env/run/s.sock")
    no_env.setenv("LXCFLOW_CGROUP", "envcg")
    p = Paths.from_env()
    assert (str(p.lxcpath), p.socket_address, p.cgroup_parent) == (
        "/env/lib", "/env/run/s.sock", "envcg")
    p = Paths.from_env("/opt/lib", "/opt/s.sock", "optcg")
    assert (str(p.lxcpath), p.socket_address, p.cgroup_parent) == (
        "/opt/lib", "/opt/s.sock", "optcg")


def test_relative_paths_are_taken_from_the_working_directory(
    no_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    no_env.chdir(tmp_path)
    p = Paths.from_env("lib", "run/s.sock")
    assert p.socket_address == f"{tmp_path}/run/s.sock"
    assert p.lxcpath == tmp_path / "lib"


def test_the_daemon_side_gets_path_objects() -> None:
    p = Paths(Path("/l"), Path("/r/s.sock"), "cg")
    assert p.socket_address == "/r/s.sock"
    assert (p.lxcpath, p.socket, p.rundir) == (Path("/l"), Path("/r/s.sock"), Path("/r"))
    assert p.container_dir("web") == Path("/l/web")
    assert p.config_file("web") == Path("/l/web/config")
    assert p.run_dir("web") == Path("/r/containers/web")


def test_without_os_imported_the_environment_is_read_all_the_same(tmp_path: Path) -> None:
    code = (
        f"import sys; sys.path.insert(0, {ROOT!r}); from lxcflow.paths import Paths; "
        "p = Paths.from_env(); print(p.socket_address, p.cgroup_parent, 'os' in sys.modules)"
    )
    r = subprocess.run(
        [sys.executable, "-S", "-c", code], cwd=tmp_path, capture_output=True, text=True,
        check=True, env={"LXCFLOW_SOCKET": "run/sé.sock", "LXCFLOW_CGROUP": "cg"},
    )
    assert r.stdout.split() == [f"{tmp_path}/run/sé.sock", "cg", "False"]
