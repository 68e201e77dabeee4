"""The load test script, short: a few clients for a few seconds, no 5xx, memory back to where it was."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from serve_support import REPO


@pytest.mark.slow
def test_a_short_load_test_has_no_server_errors_and_memory_returns(tiny_checkpoint, tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "load_test_serve.py"), "--checkpoint", str(tiny_checkpoint),
         "--clients", "4", "--seconds", "6", "--max_tokens", "8", "--max_queue", "2"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600)
    report = json.loads(result.stdout)
    assert result.returncode == 0, (report, result.stderr[-2000:])
    assert report["server_errors"] == 0 and report["requests"] >= 4
    # 4 clients against a queue of 2 behind one worker: the overflow is refused with 429, never a 5xx
    assert set(report["status_codes"]) <= {"200", "429"}
    assert report["rss_after_over_before"] <= 1.10  # the bound: memory after within 10% of before
    assert report["rss_peak_mib"] >= report["rss_before_mib"] > 0
