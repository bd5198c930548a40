"""The conformance suite fails a backend that breaks the contract, naming the broken rule:
tests/faulty_backends.py run in an inner pytest session."""

from __future__ import annotations

from collections import defaultdict

import pytest

from conftest import TESTS_DIR

pytest_plugins = ["pytester"]

# The tests each faulty backend must fail (by name, without parameters); all others pass.
RESOURCES = {"test_abandoned_stream_is_released", "test_cancelled_open_leaves_nothing_open", "test_stop_with_streams_open"}
LARGE = {"test_large_object_first_byte_is_bounded", "test_memory_per_stream_is_bounded"}
EXPECTED_FAILURES = {
    "TestCorrect": set(),
    "TestLeak": RESOURCES,  # seen by the descriptor count alone
    "TestAcloseIgnored": {*RESOURCES, "test_chunks_released_at_the_end"},
    "TestOffByOne": {"test_ranged_read", "test_if_range"},
    "TestLibraryError": {"test_missing_key_is_not_found", "test_invalid_keys_are_refused"},
    "TestNaiveDatetime": {"test_stat_metadata_types"},
    "TestEmptyPastTheEnd": {"test_unsatisfiable_range"},
    "TestUnhealthy": {"test_health_ok"},
    "TestStatReadsBody": {"test_large_object_stat_is_bounded", *LARGE},  # open() calls stat()
    "TestOpenReadsBody": LARGE,
    "TestKeepsChunks": {"test_memory_per_stream_is_bounded"},
    "TestCancelLeak": {"test_cancelled_open_leaves_nothing_open"},
    "TestStopWaits": {"test_stop_with_streams_open"},
    "TestIfRangeAsIfMatch": {"test_if_range"},
    "TestEndsCleanly": {"test_failing_source_raises_mid_stream"},
}


def test_conformance_suite_catches_each_fault(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_faulty=(TESTS_DIR / "faulty_backends.py").read_text())
    recorder = pytester.inline_run("-p", "no:cacheprovider")
    passed, skipped, failed = recorder.listoutcomes()
    failures: dict[str, set[str]] = defaultdict(set)
    for report in failed:
        _, test_class, test = report.nodeid.split("::")
        failures[test_class].add(test.split("[")[0])
    assert {name: failures[name] for name in EXPECTED_FAILURES} == EXPECTED_FAILURES
    assert set(failures) <= set(EXPECTED_FAILURES)
    assert len(passed) > 100 and not skipped
