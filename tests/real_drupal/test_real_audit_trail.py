"""The audit trail reaches a real Drupal (issue 19, item 3): an IdP event is traced from the
filter's log line to the Drupal calls it made, in the site's access log (native PHP's built-in
server writes DIR/logs/access.log through scripts/drupal-php/access-log.php): the same
X-Request-Id, a traceparent of the trace the line names, and the gateway's User-Agent."""

from __future__ import annotations

import re
import tomllib

import pytest

from harness import REPO_ROOT, jumpcloud_user, wait_for

VERSION = tomllib.loads((REPO_ROOT / "Cargo.toml").read_text())["package"]["version"]

# The access log is written by native PHP's server (10.6.15); PHP-in-WebAssembly (11.4.5)
# runs the smoke set only, which this is not part of.
pytestmark = pytest.mark.runtime("native")


def test_an_idp_create_is_traced_to_drupals_access_log(site, gateway, scim, cleanup, uniq):
    access_log = site.dir / "logs" / "access.log"
    assert access_log.is_file(), f"{access_log} missing: was the site started by this scripts/real-drupal?"
    rid = f"idp-event-{uniq}"
    mail = f"audit.{uniq}@example.com"
    r = scim("POST", "/Users", json=jumpcloud_user(mail), headers={"X-Request-Id": rid})
    assert r.status_code == 201, r.text
    uuid = cleanup.user(r.json()["id"])
    uid = site.user(uuid)["drupal_internal__uid"]

    # The filter's line: the request id, the trace, the new account's id and uid; no address.
    lines: list[str] = []
    assert wait_for(lambda: bool(lines.extend(l for l in gateway.log_text().splitlines() if f"request_id={rid} " in l) or lines), 10)
    line = lines[0]
    f = dict(re.findall(r"(\w+)=(\S+)", line.split("envoy-scim-drupal: ", 1)[1]))
    assert (f["id"], f["uids"], f["status"], f["op"]) == (uuid, str(uid), "201", "create"), line
    assert mail not in line

    # Drupal's side: every call of that request, with the same id, trace and user agent.
    calls = [l for l in access_log.read_text(errors="replace").splitlines() if f" request_id={rid} " in l]
    assert calls, f"no request with X-Request-Id {rid} in {access_log}"
    for c in calls:
        assert f'ua="envoy-scim-drupal/{VERSION} (token=primary)"' in c, c
        m = re.search(r" traceparent=00-([0-9a-f]{32})-[0-9a-f]{16}-0[01] ", c)
        assert m and m.group(1) == f["trace_id"], c
        assert mail not in c and "?" not in c
    assert any(" POST /jsonapi/user/user 201 " in c for c in calls), calls
    print(f"\nfilter: {line}\n" + "\n".join(f"drupal: {c}" for c in calls))
