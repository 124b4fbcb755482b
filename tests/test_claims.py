"""Claims in full mode warn until they are measured on the real weights, and are checked once recorded
(issue 25); `mi-course verify-full` records them. All offline: full mode here only evaluates the claims."""

import json

import pytest

import mi_course
from mi_course import claims, config


@pytest.fixture
def full(monkeypatch, tmp_path):
    monkeypatch.setenv(config.MODE_ENV, "full")
    monkeypatch.delenv(config.DRY_RUN_ENV, raising=False)
    monkeypatch.delenv(claims.VERIFY_ENV, raising=False)
    monkeypatch.setattr(claims, "RECORD_PATH", tmp_path / "full_claims.json")
    return tmp_path


def test_an_unmeasured_full_mode_claim_warns_and_run_all_goes_on(full, capsys):
    assert mi_course.claim("an induction head scores above 0.4", lambda: False, seen=0.31) is None
    err = capsys.readouterr().err
    assert "not yet measured on the real weights: an induction head scores above 0.4" in err
    assert "does NOT hold here (seen: 0.31)" in err and "mi-course verify-full" in err
    mi_course.claim("the loss falls", True)
    assert "holds here" in capsys.readouterr().err, "an unmeasured claim says so even when it holds"


def test_a_recorded_claim_is_checked_like_a_lite_one(full, capsys):
    claims.merge_records([{"statement": "the loss falls", "held": True, "seen": "0.5"},
                          {"statement": "x is large", "held": False, "seen": "3"}], device="A100")
    mi_course.claim("the loss falls", True)
    assert "\u2713 the loss falls" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="claim does not hold: the loss falls"):
        mi_course.claim("the loss falls", lambda: False, seen=0.9)
    mi_course.claim("x is large", False)  # measured not to hold on the real weights: the text is wrong, warn
    assert "measured not to hold on the real weights: x is large" in capsys.readouterr().err


def test_verify_full_records_instead_of_raising_and_merges(full, monkeypatch, capsys):
    record = full / "run.jsonl"
    monkeypatch.setenv(claims.VERIFY_ENV, str(record))
    mi_course.claim("a holds", True, seen=1.0)
    mi_course.claim("b holds", lambda: False, seen=[1, 2])
    mi_course.claim("a holds", False)  # evaluated twice, failed once: not held
    lines = [json.loads(l) for l in record.read_text().splitlines()]
    assert [(l["statement"], l["held"]) for l in lines] == [("a holds", True), ("b holds", False), ("a holds", False)]
    data = claims.merge_records(lines + [{"statement": "c holds", "held": True}], device="cpu", today="2026-12-07")
    assert data["claims"]["a holds"]["held"] is False and data["claims"]["c holds"]["held"] is True
    assert data["claims"]["b holds"]["seen"] == ["[1, 2]"] and data["claims"]["c holds"]["measured"] == "2026-12-07"
    assert claims.recorded_claims() == data["claims"]


def test_lite_and_dry_run_behave_as_before(monkeypatch, capsys):
    monkeypatch.setenv(config.MODE_ENV, "lite")
    monkeypatch.delenv(config.DRY_RUN_ENV, raising=False)
    with pytest.raises(AssertionError, match="seen: 2"):
        mi_course.claim("one is more than two", False, seen=2)
    monkeypatch.setenv(config.MODE_ENV, "full")
    monkeypatch.setenv(config.DRY_RUN_ENV, "1")
    mi_course.claim("anything", lambda: pytest.fail("a skipped claim computes nothing"))
    assert "claim not checked: anything" in capsys.readouterr().out


def test_verify_full_refuses_a_dry_run(monkeypatch):
    from mi_course.cli import main

    monkeypatch.setenv(config.DRY_RUN_ENV, "1")
    assert main(["verify-full", "00"]) == 2
