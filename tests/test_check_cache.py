"""The check cache (issue #10 item 7, engine.policy.cache): unchanged workflow files are not parsed
or checked again, and every problem is still found, at its position, on every run."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from conftest import copy_shipped_policy

from engine.exceptions import PolicyError
from engine.policy import loader
from engine.policy.cache import CheckCache, cache_folder
from engine.policy.loader import load_policy


@pytest.fixture
def config(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("COOPFLOW_CHECK_CACHE", str(tmp_path / "cache"))
    return copy_shipped_policy(tmp_path / "policy")


@pytest.fixture
def parses(monkeypatch) -> list[str]:
    """The files parsed (loader.load_document calls) during a test."""
    seen: list[str] = []
    real = loader.load_document

    def counting(path, display=None):
        seen.append(Path(path).name)
        return real(path, display)

    monkeypatch.setattr(loader, "load_document", counting)
    return seen


def test_second_check_parses_only_config_and_rules(config, parses):
    first = load_policy(config, cache=True)
    assert "emergency_review.yaml" in parses
    parses.clear()
    again = load_policy(config, cache=True)
    assert parses == ["config.yaml", "escalation.yaml", "reviews.yaml"]
    assert again.digest == first.digest and again.workflows == first.workflows
    assert again.workflows == load_policy(config).workflows  # the same specs as a load without cache


def test_an_edit_reparses_that_file_and_its_error_is_found(config, parses):
    load_policy(config, cache=True)
    wf = config.parent / "workflows" / "advisory.yaml"
    wf.write_text(wf.read_text(encoding="utf-8").replace("to: ", "to: nowhere_", 1), encoding="utf-8")
    parses.clear()
    with pytest.raises(PolicyError, match=r"advisory.yaml:\d+:\d+: unknown state 'nowhere_"):
        load_policy(config, cache=True)
    assert "advisory.yaml" in parses and "emergency_review.yaml" not in parses


def test_a_cross_file_error_in_a_cached_file_is_found_at_its_position(config, parses):
    """A role removed from config.yaml: cached workflows that grant it are checked again and placed exactly."""
    load_policy(config, cache=True)
    expected = None
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("      inspector:\n        title: Thanh tra viên (Thanh tra Sở)\n        people: [vu_minh_tuan]\n", ""), encoding="utf-8")
    with pytest.raises(PolicyError) as plain:
        load_policy(config)
    expected = [str(p) for p in plain.value.problems]
    parses.clear()
    with pytest.raises(PolicyError) as cached:
        load_policy(config, cache=True)
    assert [str(p) for p in cached.value.problems] == expected and any("inspection.yaml" in e and "no role 'inspector'" in e for e in expected)
    assert "emergency_review.yaml" not in parses and "inspection.yaml" not in parses  # placed lazily (cache.LazyDocument)


def test_a_corrupt_entry_is_ignored(config):
    load_policy(config, cache=True)
    folder = cache_folder(config)
    for entry in folder.glob("*.pickle"):
        entry.write_bytes(b"not a pickle")
    assert load_policy(config, cache=True).digest == load_policy(config).digest
    assert all(isinstance(pickle.loads(e.read_bytes()), dict) for e in folder.glob("*.pickle"))


def test_cache_off_and_cli(config, monkeypatch, coopflow_cli):
    monkeypatch.setenv("COOPFLOW_CHECK_CACHE", "off")
    assert CheckCache.for_policy(config) is None
    monkeypatch.setenv("COOPFLOW_CHECK_CACHE", str(config.parent / "c"))
    for _ in range(2):
        code, out, _ = coopflow_cli("check", "-c", str(config))
        assert code == 0 and out.startswith("ok: 8 workflows")
    assert len(list((config.parent / "c").rglob("*.pickle"))) == len(list((config.parent / "workflows").glob("*.yaml")))  # one per workflow file
