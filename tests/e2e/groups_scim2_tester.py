#!/usr/bin/env python3
"""scim2-tester against an Envoy with `groups` enabled (not a pytest module).

Reuses tests/conformance/run_scim2_tester.py's `run_checks` and `report` unchanged; only the
gateway differs (the plugin configuration gains `groups`). Prints every non-SUCCESS result,
then the Group results one by one, then the totals.

    E2E_NO_BUILD=1 .venv/bin/python tests/e2e/groups_scim2_tester.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "conformance"))

import harness  # noqa: E402
import run_scim2_tester  # noqa: E402
from groups_support import groups_config  # noqa: E402


def is_group_result(r) -> bool:
    rt = getattr(r, "resource_type", None)
    return rt == "Group" or "Group" in (r.title or "")


def main() -> int:
    harness.ensure_built()
    stack = harness.Stack(timeout_ms=5000)
    stack.start()
    t0 = time.monotonic()
    try:
        gw = stack.new_envoy(plugin_overrides={"groups": groups_config()})
        print(f"scim2-tester against {gw.base_url} (groups enabled)")
        results = run_scim2_tester.run_checks(gw.base_url, stack.tokens["primary"])
        passed, failed, skipped = run_scim2_tester.report(results)
        groups = [r for r in results if is_group_result(r)]
        print(f"\nGroup results ({len(groups)}):")
        for r in groups:
            print(f"  {r.status.name:8} {r.title}")
            if r.status.name not in ("SUCCESS", "SKIPPED") and r.reason:
                for line in str(r.reason).splitlines()[:6]:
                    print(f"           {line}")
        g_pass = sum(r.status.name == "SUCCESS" for r in groups)
        g_skip = sum(r.status.name == "SKIPPED" for r in groups)
        print(f"\nGroup checks: {g_pass} passed, {len(groups) - g_pass - g_skip} failed, {g_skip} skipped")
        print(f"({len(results)} results in {time.monotonic() - t0:.1f}s)")
        print(f"scim2-tester: {passed} passed, {failed} failed, {skipped} skipped")
    finally:
        stack.stop()
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
