"""The API's /reports refuses what `coopflow report` refuses: periods not begun yet and periods over before the agreement.

Against a real `coopflow run` process serving the API (tests/test_api.py's Server), on the real clock:
next year has not begun, 2022 is over before the shipped agreement took effect (3 April 2023).
"""

from __future__ import annotations

import pytest
from test_api import Server

from engine import clock


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = Server(tmp_path_factory.mktemp("report-api"))
    yield running
    running.stop()


@pytest.mark.parametrize("period,needle", [
    (f"{clock.now().year + 1}", "has not begun yet"), (f"{clock.now().year + 1}Q1", "has not begun yet"),
    ("2022", "before the agreement took effect on 03/04/2023"), ("2027H3", "not a half year"),
], ids=["next-year", "next-quarter", "before-agreement", "malformed"])
def test_refused_periods_are_422_with_the_cli_reason(server, period, needle):
    answer = server.client("nguyen_van_a").get(f"/reports/{period}")
    assert answer.status_code == 422 and needle in answer.text


def test_a_begun_year_gives_the_figures(server):
    answer = server.client("nguyen_van_a").get(f"/reports/{clock.now().year}")
    assert answer.status_code == 200
    data = answer.json()
    assert data["period"] == str(clock.now().year) and not data["complete"]
    assert "templates" not in data and data["agreement"].startswith("Quy chế phối hợp")  # figures only, no paths
