"""`cbm app`: resolves the model directory (argument, $CBM_MODEL_DIR, the demo) and starts Streamlit."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from browser_pages import free_port, wait_healthy

from cbm.app import ENTRY, default_demo_model_dir, resolve_model_dir, streamlit_command
from cbm.cli import app_cmd, main
from cbm.exceptions import ModelDirError


@pytest.fixture
def no_model_env(tmp_path, monkeypatch):
    monkeypatch.delenv("CBM_MODEL_DIR", raising=False)
    monkeypatch.setenv("CBM_HOME", str(tmp_path / "home"))


def test_demo_location_follows_cbm_home(no_model_env, tmp_path):
    assert default_demo_model_dir() == tmp_path / "home" / "demo" / "model"


def test_missing_demo_says_run_cbm_demo(no_model_env):
    with pytest.raises(ModelDirError, match="Run `cbm demo` first"):
        resolve_model_dir()


def test_cli_error_is_one_line(no_model_env, capsys):
    assert main(["app"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cbm app: error:") and "cbm demo" in err and "\n" not in err


def test_cli_refuses_a_foreign_directory(no_model_env, tmp_path, capsys):
    assert main(["app", str(tmp_path)]) == 2
    assert "model.json is missing" in capsys.readouterr().err


def test_cli_serves_the_model_headless(model_dir, monkeypatch):
    seen = {}

    def fake_call(cmd, env):
        seen.update(cmd=cmd, env=env)
        return 0

    monkeypatch.setattr(app_cmd, "serve", fake_call)
    assert main(["app", str(model_dir), "--port", "8999"]) == 0
    cmd = seen["cmd"]
    assert cmd[cmd.index("run") + 1] == str(ENTRY)
    assert cmd[cmd.index("--server.port") + 1] == "8999"
    assert cmd[cmd.index("--server.headless") + 1] == "true"
    assert cmd[cmd.index("--browser.gatherUsageStats") + 1] == "false"
    assert cmd[cmd.index("--server.address") + 1] == "127.0.0.1"  # this machine only
    assert cmd[-2:] == ["--", str(model_dir.resolve())]
    assert seen["env"]["CBM_MODEL_DIR"] == str(model_dir.resolve())


def test_demo_is_the_default_when_it_exists(model_dir, monkeypatch, tmp_path):
    monkeypatch.delenv("CBM_MODEL_DIR")
    monkeypatch.setenv("CBM_HOME", str(model_dir.parent.parent))
    demo = default_demo_model_dir()
    demo.parent.mkdir(parents=True, exist_ok=True)
    model_dir.rename(demo)
    assert resolve_model_dir() == demo
    assert streamlit_command(demo, port=None)[-1] == str(demo)


def test_host_is_an_option_and_a_public_address_is_warned_about(model_dir, monkeypatch, capsys):
    seen = {}
    monkeypatch.setattr(app_cmd, "serve", lambda cmd, env: seen.update(cmd=cmd) or 0)
    assert main(["app", str(model_dir), "--host", "0.0.0.0"]) == 0
    assert seen["cmd"][seen["cmd"].index("--server.address") + 1] == "0.0.0.0"
    assert "warning: listening on 0.0.0.0" in capsys.readouterr().err
    assert main(["app", str(model_dir), "--host", " "]) == 2
    assert "--host must be an address" in capsys.readouterr().err


def test_the_command_keeps_the_app_local():
    cmd = streamlit_command("m")
    opts = dict(zip(cmd[5:-2:2], cmd[6:-2:2], strict=True))
    assert opts["--server.address"] == "127.0.0.1" and opts["--browser.serverAddress"] == "localhost"
    assert opts["--browser.gatherUsageStats"] == "false"  # no usage statistics to Streamlit's servers
    assert not any(k.startswith("--theme.font") for k in opts)  # bundled fonts only


def test_the_page_icon_is_a_local_image(model_dir, monkeypatch):
    """A ":material/...:" icon would make every browser fetch the favicon from fonts.gstatic.com."""
    import streamlit as st
    from PIL import Image
    from streamlit.testing.v1 import AppTest

    seen = {}
    real = st.set_page_config
    monkeypatch.setattr(st, "set_page_config", lambda **kw: seen.update(kw) or real(**kw))
    at = AppTest.from_file(str(ENTRY), default_timeout=60).run()
    assert not at.exception
    assert isinstance(seen["page_icon"], Image.Image)


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as fh:
        return [int(c) for c in fh.read().split()]


def _gone(pid: int, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                if fh.read().split(")")[-1].split()[0] == "Z":  # a zombie serves nothing
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.1)
    return False


def _port_closed(port: int, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) != 0:
                return True
        time.sleep(0.1)
    return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the process tree from /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL], ids=lambda s: s.name)
def test_stopping_cbm_app_by_its_pid_stops_the_server(model_dir, sig):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "cbm", "app", str(model_dir), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = None
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc)
        (server,) = _children(proc.pid)
        os.kill(proc.pid, sig)
        rc = proc.wait(timeout=15)
        assert _port_closed(port, 10), f"the server still answers on port {port} after {sig.name}"
        assert _gone(server, 10), f"the Streamlit process {server} outlived cbm app"
        if sig != signal.SIGKILL:
            assert rc in (0, 128 + sig)
    finally:
        for pid in (proc.pid, server):  # whatever is left, so a failure does not leave a server behind
            with contextlib.suppress(ProcessLookupError, TypeError):
                os.kill(pid, signal.SIGKILL)
        proc.wait()
