"""Fixtures the end-to-end modules share."""

from __future__ import annotations

import pytest
from support.report_case import ReportCase, report_case


@pytest.fixture(scope="module")
def case(flowers, backbone50, tmp_path_factory) -> ReportCase:
    """The session's report case (support/report_case.py: a run, its report, the references)."""
    return report_case(flowers, backbone50, tmp_path_factory.getbasetemp() / "report-case")
