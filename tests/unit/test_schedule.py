"""The suite's module order (tests/support/schedule.py): longest first, from a record."""

from __future__ import annotations

from types import SimpleNamespace

from support.schedule import RECORD, Recorder, longest_first, read_record


def _items(*nodeids: str) -> list[SimpleNamespace]:
    return [SimpleNamespace(nodeid=nodeid) for nodeid in nodeids]


def test_modules_go_longest_first_unknown_ones_before_all_and_tests_keep_their_order():
    items = _items("t/a.py::one", "t/b.py::one", "t/a.py::two", "t/c.py::one",
                   "t/d.py::one", "t/b.py::two[x]", "t/e.py::one")
    seconds = {"t/a.py": 5.0, "t/b.py": 30.0, "t/c.py": 5.0, "t/e.py": 0.1}
    order = [item.nodeid for item in longest_first(items, seconds)]
    assert order == ["t/d.py::one", "t/b.py::one", "t/b.py::two[x]", "t/a.py::one",
                     "t/a.py::two", "t/c.py::one", "t/e.py::one"]


def test_a_missing_or_damaged_record_keeps_collection_order(tmp_path):
    assert read_record(tmp_path / "absent.json") == {}
    (tmp_path / "bad.json").write_text("{not json")
    assert read_record(tmp_path / "bad.json") == {}
    (tmp_path / "list.json").write_text("[1, 2]")
    assert read_record(tmp_path / "list.json") == {}
    items = _items("t/b.py::one", "t/a.py::one")
    assert longest_first(items, {}) == items


def test_the_recorder_sums_setup_call_and_teardown_by_module(tmp_path):
    recorder = Recorder(tmp_path / "seconds.json")
    for nodeid, duration in [("t/a.py::one", 1.25), ("t/a.py::one", 2.0), ("t/b.py::x", 9.0),
                             ("t/a.py::two[p]", 0.5), ("t/a.py::one", 0.04)]:
        recorder.pytest_runtest_logreport(SimpleNamespace(nodeid=nodeid, duration=duration))
    recorder.pytest_sessionfinish()
    text = (tmp_path / "seconds.json").read_text()
    assert text == '{\n "t/b.py": 9.0,\n "t/a.py": 3.8\n}\n'


def test_the_record_in_the_tree_names_existing_modules_with_their_seconds():
    record = read_record(RECORD)
    root = RECORD.parent.parent
    assert len(record) >= 50
    assert all((root / name).is_file() and seconds >= 0 for name, seconds in record.items())
