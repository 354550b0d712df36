"""A deployment whose `store:` is edited under a running daemon: the daemon keeps its store until
restart (tests/test_files_and_faults.py), and a command run with the edited config, which finds no
daemon on the new store and so applies its event there, warns that the running daemon will not see it."""

from __future__ import annotations

from pathlib import Path

from conftest import free_port, running_daemon, shipped_policy_with_store

from engine.service import Deployment


def _with_port(config: Path, port: int) -> Path:
    config.write_text(config.read_text(encoding="utf-8") + f"\nhttp:\n  port: {port}\n", encoding="utf-8")
    return config


def test_command_on_another_store_than_the_running_daemon_warns(tmp_path):
    port = free_port()
    running = _with_port(shipped_policy_with_store(tmp_path / "a", tmp_path / "a" / "a.db"), port)
    edited = _with_port(shipped_policy_with_store(tmp_path / "b", tmp_path / "b" / "b.db"), port)
    with running_daemon(running, port):
        with Deployment.open(edited, log_to_files=False) as deployment:
            result = deployment.start("information_exchange", "dic.focal_point",
                                      {"requester": "dic", "recipient": "police", "subject": "Danh sách trang tin"})
        assert result.applied, result.text
        assert result.warning and "runs on another store" in result.warning
        assert str(tmp_path / "b" / "b.db") in result.warning
        with Deployment.open(running, log_to_files=False) as deployment:  # the daemon's own store: no warning
            result = deployment.start("information_exchange", "dic.focal_point",
                                      {"requester": "dic", "recipient": "police", "subject": "Danh sách trang tin"})
        assert result.applied and result.warning is None


def test_cli_prints_the_warning_on_stderr(tmp_path, coopflow_cli):
    port = free_port()
    running = _with_port(shipped_policy_with_store(tmp_path / "a", tmp_path / "a" / "a.db"), port)
    edited = _with_port(shipped_policy_with_store(tmp_path / "b", tmp_path / "b" / "b.db"), port)
    with running_daemon(running, port):
        code, out, err = coopflow_cli("start", "emergency_review", "--as", "dic.leader", "--set", "issue=Họp gấp",
                                      "-c", str(edited))
    assert code == 0 and "applied: started in proposed" in out
    assert err.startswith("warning: the daemon answering on 127.0.0.1:") and "runs on another store" in err
