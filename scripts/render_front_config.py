#!/usr/bin/env python3
"""Render the front Envoy for several envoy-scim-drupal replicas from
scripts/recipes/envoy-front.yaml (docs/deployment.md, "More than one Envoy").

    render_front_config.py --out .run/envoy-front.yaml --listen 0.0.0.0:10000 \
        --admin 127.0.0.1:9900 --replica 10.0.0.11:10000 --replica 10.0.0.12:10000

Only values are substituted: the listener and admin addresses, and the replicas (HOST:PORT,
repeatable, at least one) as the endpoints of both clusters, the SCIM one (consistent hashing
on the Authorization header) and the site one (round-robin). A replica named by a host name
makes the clusters STRICT_DNS. The config holds no secrets.
"""

from __future__ import annotations

import argparse
import copy
import ipaddress
import sys
from pathlib import Path

import yaml

from render_envoy_config import split_hostport, write

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TEMPLATE = REPO_ROOT / "scripts" / "recipes" / "envoy-front.yaml"
# The clusters whose endpoints are the replicas.
REPLICA_CLUSTERS = ("scim_replicas", "site_replicas")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def render(
    template: Path = DEFAULT_TEMPLATE,
    *,
    listen: str | None = None,
    admin: str | None = None,
    replicas: list[str] | None = None,
) -> dict:
    """The rendered front config as a dict. Raises ValueError for a bad address."""
    cfg = yaml.safe_load(Path(template).read_text())
    if listen:
        host, port = split_hostport(listen)
        cfg["static_resources"]["listeners"][0]["address"]["socket_address"] = {"address": host, "port_value": port}
    if admin:
        host, port = split_hostport(admin)
        cfg["admin"]["address"]["socket_address"] = {"address": host, "port_value": port}
    if replicas is not None:
        if not replicas:
            raise ValueError("at least one replica is needed")
        hosts = [split_hostport(r) for r in replicas]
        if len(set(hosts)) != len(hosts):
            raise ValueError(f"a replica is named twice: {replicas}")
        endpoints = [{"endpoint": {"address": {"socket_address": {"address": h, "port_value": p}}}} for h, p in hosts]
        for cluster in cfg["static_resources"]["clusters"]:
            if cluster["name"] not in REPLICA_CLUSTERS:
                continue
            cluster["load_assignment"]["endpoints"] = [{"lb_endpoints": copy.deepcopy(endpoints)}]
            if all(_is_ip(h) for h, _ in hosts):
                cluster["type"] = "STATIC"
                cluster.pop("dns_lookup_family", None)
            else:
                cluster["type"] = "STRICT_DNS"
                cluster["dns_lookup_family"] = "V4_PREFERRED"
    return cfg


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--template", default=str(DEFAULT_TEMPLATE))
    ap.add_argument("--out", required=True, help="where to write the rendered Envoy config")
    ap.add_argument("--listen", help="the front listener's host:port")
    ap.add_argument("--admin", help="the front Envoy's admin host:port")
    ap.add_argument("--replica", action="append", default=[], help="a gateway replica's host:port (repeatable)")
    args = ap.parse_args(argv)
    try:
        cfg = render(Path(args.template), listen=args.listen, admin=args.admin, replicas=args.replica or None)
    except ValueError as e:
        ap.error(str(e))
    write(cfg, Path(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
