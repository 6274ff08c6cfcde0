#!/usr/bin/env python3
"""Render an Envoy config for envoy-scim-drupal from the repository's envoy.yaml.

Only values are substituted; the structure stays the root envoy.yaml's. Used by
scripts/run, the e2e harness (tests/e2e/conftest.py) and the conformance runner.

    render_envoy_config.py --out .run/envoy.yaml --listen 127.0.0.1:10000 \
        --admin 127.0.0.1:9901 --drupal-url http://127.0.0.1:8080 \
        --token-sha256 default=<hex> --wasm target/wasm32-wasip1/release/envoy_scim_drupal.wasm

Tokens may be given in clear with --token LABEL=TOKEN (hashed here) or as digests with
--token-sha256 LABEL=HEX. --set KEY=JSON sets any plugin-configuration key (dotted paths
such as drupal.timeout_ms); --plugin-config FILE replaces the whole plugin configuration.
--attributes FILE sets the plugin's `attributes` (the SCIM ↔ Drupal field mapping) to the
JSON list in FILE, e.g. scripts/emulator-attributes.json for the Drupal emulator (`none`: no
mapping). --groups on|off|JSON sets the plugin's `groups` (on: vocabulary scim_groups and
field field_scim_groups; off: no /Groups; a JSON object: that setting).

Every rendered config has the wasm VM's `vm_config.vm_id` (the template's, else
"envoy-scim-drupal"): proxy-wasm shared data (the filter's session and locks) is shared by
every plugin with the same vm_id, and an empty one with every other plugin that leaves it
empty.

    render_envoy_config.py --emulator-flags scripts/emulator-attributes.json [--groups on|off|JSON]

prints the drupal-emulator arguments that create the Drupal user fields such a mapping
(and the groups' membership field) names, one per line, and writes no config.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import ipaddress
import json
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TEMPLATE = REPO_ROOT / "envoy.yaml"
# The attribute mapping used with the Drupal emulator (scripts/run without DRUPAL_URL, the
# e2e tests, the conformance run). The shipped envoy.yaml keeps the core-only mapping.
EMULATOR_ATTRIBUTES = REPO_ROOT / "scripts" / "emulator-attributes.json"
# Fields the emulator's --second-run-fields adds (the recorded site's second run).
SECOND_RUN_FIELDS = {"field_given_name", "field_family_name"}
WASM_FILTER = "envoy.filters.http.wasm"
# The wasm VM's id in every config rendered here (see the module docstring).
VM_ID = "envoy-scim-drupal"
# `groups` for --groups on / SCIM_GROUPS=on: the vocabulary and field of docs/groups.md
# (the filter's defaults, spelled out), which the Drupal emulator has.
DEFAULT_GROUPS = {"vocabulary": "scim_groups", "membership_field": "field_scim_groups"}
EMULATOR_VOCABULARY = "scim_groups"
EMULATOR_MEMBERSHIP_FIELD = "field_scim_groups"


def load_attributes(path: Path | str) -> list:
    """The attribute mapping in a JSON file: a list of {scim, drupal[, type][, case_exact]}.
    Raises ValueError naming the file (missing, not JSON, wrong shape)."""
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ValueError(f"{path}: cannot read it ({e.strerror or e})") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(value, list):
        raise ValueError(f"{path}: expected a JSON list of {{\"scim\", \"drupal\"[, \"type\"]}} objects")
    for i, e in enumerate(value):
        if not (isinstance(e, dict) and isinstance(e.get("scim"), str) and isinstance(e.get("drupal"), str)):
            raise ValueError(f"{path}: entry {i} is not an object with string \"scim\" and \"drupal\"")
    return value


def parse_groups(spec: str) -> dict | None:
    """--groups / SCIM_GROUPS: `on` (DEFAULT_GROUPS), `off` (None) or a JSON object (the
    plugin's `groups`, e.g. {"role_grants": {"Engineering": ["developer"]}}). Raises ValueError."""
    s = spec.strip()
    if s.lower() == "on":
        return dict(DEFAULT_GROUPS)
    if s.lower() == "off":
        return None
    try:
        value = json.loads(s)
    except json.JSONDecodeError as e:
        if not s.startswith("{"):
            raise ValueError(f"must be on, off or a JSON object (the plugin's `groups`), not {spec!r}") from None
        raise ValueError(f"not valid JSON ({e})") from None
    if not isinstance(value, dict):
        raise ValueError(f"must be on, off or a JSON object (the plugin's `groups`), not {spec!r}")
    return value


def check_public_url(url: str) -> str:
    """The plugin's public_url rule: http(s)://host[:port], no path (a trailing / is dropped).
    Raises ValueError."""
    u = urlsplit(url.strip())
    if u.scheme not in ("http", "https") or not u.netloc or u.path not in ("", "/") or u.query or u.fragment:
        raise ValueError(f"must be http(s)://host[:port] without a path, not {url!r}")
    return url.strip().rstrip("/")


def emulator_field_args(attributes: list, groups: dict | None = None) -> list[str]:
    """drupal-emulator arguments creating every Drupal user field the mapping names:
    --second-run-fields for the recorded site's name fields (and the vocabulary scim_groups with
    field_scim_groups), --user-field NAME[:TYPE] for the rest, and NAME:scim_groups for another
    membership field named in `groups`. Raises ValueError for a vocabulary the emulator lacks."""
    args = ["--second-run-fields"]
    for entry in attributes:
        field = entry["drupal"]
        if field in SECOND_RUN_FIELDS:
            continue
        kind = entry.get("type", "string")
        args += ["--user-field", field if kind == "string" else f"{field}:{kind}"]
    if groups is not None:
        vocabulary = groups.get("vocabulary", EMULATOR_VOCABULARY)
        if vocabulary != EMULATOR_VOCABULARY:
            raise ValueError(f"the Drupal emulator has only the vocabulary {EMULATOR_VOCABULARY!r}, not {vocabulary!r}")
        field = groups.get("membership_field", EMULATOR_MEMBERSHIP_FIELD)
        if field != EMULATOR_MEMBERSHIP_FIELD and isinstance(field, str):
            args += ["--user-field", f"{field}:scim_groups"]
    return args


def sha256_hex(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def split_hostport(value: str, default_port: int | None = None) -> tuple[str, int]:
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = rest.lstrip(":")
    else:
        host, sep, port = value.rpartition(":")
        if not sep:
            host, port = value, ""
    if not port:
        if default_port is None:
            raise ValueError(f"missing port in {value!r}")
        return host, default_port
    return host, int(port)


def _hcm(listener: dict) -> dict:
    for chain in listener["filter_chains"]:
        for f in chain["filters"]:
            if f["name"] == "envoy.filters.network.http_connection_manager":
                return f["typed_config"]
    raise KeyError("no http_connection_manager in listener")


def _wasm_config(hcm: dict) -> dict:
    for f in hcm["http_filters"]:
        if f["name"] == WASM_FILTER:
            return f["typed_config"]["config"]
    raise KeyError(f"no {WASM_FILTER} filter")


def plugin_config(cfg: dict) -> dict:
    """The wasm plugin's JSON configuration inside a parsed Envoy config."""
    hcm = _hcm(cfg["static_resources"]["listeners"][0])
    return json.loads(_wasm_config(hcm)["configuration"]["value"])


def set_dotted(obj: dict, dotted: str, value) -> None:
    keys = dotted.split(".")
    for k in keys[:-1]:
        obj = obj.setdefault(k, {})
    obj[keys[-1]] = value


def render(
    template: Path = DEFAULT_TEMPLATE,
    *,
    listen: str | None = None,
    admin: str | None = None,
    drupal_url: str | None = None,
    tokens: list[dict] | None = None,
    wasm: str | None = None,
    plugin_overrides: dict | None = None,
    plugin_replace: dict | str | None = None,
    access_log_path: str | None = None,
    public_jsonapi: bool = False,
) -> dict:
    """Return the rendered Envoy config as a dict.

    plugin_overrides maps dotted keys to values (None deletes the key).
    plugin_replace replaces the plugin configuration entirely (a dict is JSON-encoded,
    a str is used verbatim, so tests can feed malformed JSON).
    public_jsonapi opens what the template closes on the public side (its routes named
    "closed:*": /jsonapi, JSON logins, Basic Authorization), for decoupled sites.
    """
    cfg = yaml.safe_load(Path(template).read_text())
    listener = cfg["static_resources"]["listeners"][0]
    hcm = _hcm(listener)
    wasm_cfg = _wasm_config(hcm)

    if listen:
        host, port = split_hostport(listen)
        listener["address"]["socket_address"] = {"address": host, "port_value": port}
    if admin:
        host, port = split_hostport(admin)
        cfg["admin"]["address"]["socket_address"] = {"address": host, "port_value": port}
    if access_log_path:
        hcm["access_log"] = [
            {
                "name": "envoy.access_loggers.file",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
                    "path": access_log_path,
                    # The template's format (path without the query), when it has one.
                    **{k: v for k, v in (hcm.get("access_log") or [{}])[0].get("typed_config", {}).items() if k == "log_format"},
                },
            }
        ]
    if public_jsonapi:
        open_public_site(hcm)

    pc = json.loads(wasm_cfg["configuration"]["value"])

    if drupal_url:
        u = urlsplit(drupal_url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"DRUPAL_URL must be http(s)://host[:port], got {drupal_url!r}")
        tls = u.scheme == "https"
        host = u.hostname
        port = u.port or (443 if tls else 80)
        cluster = next(c for c in cfg["static_resources"]["clusters"] if c["name"] == pc["drupal"]["cluster"])
        try:
            ipaddress.ip_address(host)
            cluster["type"] = "STATIC"
        except ValueError:
            cluster["type"] = "STRICT_DNS"
            cluster["dns_lookup_family"] = "V4_PREFERRED"
        cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"] = {
            "address": host,
            "port_value": port,
        }
        authority = u.netloc.rpartition("@")[2]
        if tls:
            cluster["transport_socket"] = {
                "name": "envoy.transport_sockets.tls",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                    "sni": host,
                    "common_tls_context": {
                        "validation_context": {
                            "trusted_ca": {"filename": os.environ.get("DRUPAL_CA_FILE", "/etc/ssl/certs/ca-certificates.crt")},
                            "match_typed_subject_alt_names": [
                                {"san_type": "DNS", "matcher": {"exact": host}},
                            ]
                            if not _is_ip(host)
                            else [{"san_type": "IP_ADDRESS", "matcher": {"exact": host}}],
                        }
                    },
                },
            }
        pc["drupal"]["authority"] = authority
        if not _is_ip(host):
            # A named (virtual-hosted) Drupal: proxied site traffic must carry its Host.
            for vh in hcm["route_config"]["virtual_hosts"]:
                for r in vh["routes"]:
                    if "route" in r and r["route"].get("cluster") == cluster["name"]:
                        r["route"]["host_rewrite_literal"] = authority
        if u.path and u.path != "/":
            # Drupal installed under a sub-path: JSON:API lives below it.
            pc["drupal"]["jsonapi_prefix"] = u.path.rstrip("/") + "/jsonapi"

    if tokens is not None:
        pc["tokens"] = tokens
    for k, v in (plugin_overrides or {}).items():
        if v is None:
            parent = pc
            keys = k.split(".")
            for kk in keys[:-1]:
                parent = parent.get(kk, {})
            parent.pop(keys[-1], None)
        else:
            set_dotted(pc, k, v)
    if plugin_replace is not None:
        value = plugin_replace if isinstance(plugin_replace, str) else json.dumps(plugin_replace)
    else:
        value = json.dumps(pc)
    wasm_cfg["configuration"]["value"] = value

    # Envoy's own body limits (listener buffer, buffer filter, the SCIM 413 text) follow the
    # plugin's max_body_bytes, so the two never disagree.
    final = plugin_replace if isinstance(plugin_replace, dict) else (pc if plugin_replace is None else None)
    limit = final.get("max_body_bytes") if isinstance(final, dict) else None
    if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0:
        set_body_limit(listener, hcm, limit)

    if wasm:
        wasm_cfg["vm_config"]["code"]["local"]["filename"] = str(wasm)
    set_vm_id(wasm_cfg)
    return cfg


def open_public_site(hcm: dict) -> None:
    """Drops the routes named "closed:*" (see envoy.yaml): the public side then reaches
    /jsonapi, JSON logins and Basic-authenticated pages as any other page of the site."""
    for vh in hcm["route_config"]["virtual_hosts"]:
        vh["routes"] = [r for r in vh["routes"] if not str(r.get("name", "")).startswith("closed:")]


def parse_on_off(value: str) -> bool:
    if value not in ("on", "off"):
        raise argparse.ArgumentTypeError(f"expected on or off, got {value!r}")
    return value == "on"


def set_vm_id(wasm_cfg: dict) -> None:
    """vm_config.vm_id: the template's when it has one, else VM_ID; always the first key, so a
    template with and one without it render alike."""
    vm = wasm_cfg["vm_config"]
    vm_id = vm.pop("vm_id", None) or VM_ID
    wasm_cfg["vm_config"] = {"vm_id": vm_id, **vm}


def set_body_limit(listener: dict, hcm: dict, limit: int) -> None:
    listener["per_connection_buffer_limit_bytes"] = limit
    for f in hcm["http_filters"]:
        if f["name"] == "envoy.filters.http.buffer":
            f["typed_config"]["max_request_bytes"] = limit
    for m in hcm.get("local_reply_config", {}).get("mappers", []):
        src = m.get("body_format_override", {}).get("text_format_source", {})
        if '"status":"413"' in src.get("inline_string", ""):
            src["inline_string"] = json.dumps(
                {
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                    "status": "413",
                    "detail": f"Request body exceeds the {limit}-byte limit.",
                },
                separators=(",", ":"),
            )


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def write(cfg: dict, out: Path) -> None:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(cfg, sort_keys=False, width=1000))


def _parse_label(spec: str) -> tuple[str, str]:
    label, sep, value = spec.partition("=")
    if not sep or not label or not value:
        raise argparse.ArgumentTypeError(f"expected LABEL=VALUE, got {spec!r}")
    return label, value


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--template", default=str(DEFAULT_TEMPLATE))
    ap.add_argument("--out", help="where to write the rendered Envoy config")
    ap.add_argument("--listen", help="SCIM listener host:port")
    ap.add_argument("--admin", help="Envoy admin host:port")
    ap.add_argument("--drupal-url", help="http(s)://host[:port] of Drupal")
    ap.add_argument("--token", action="append", default=[], type=_parse_label, help="LABEL=TOKEN (hashed)")
    ap.add_argument("--token-sha256", action="append", default=[], type=_parse_label, help="LABEL=SHA256HEX")
    ap.add_argument("--wasm", help="path of the filter's .wasm")
    ap.add_argument("--set", action="append", default=[], type=_parse_label, help="plugin key=JSON value")
    ap.add_argument("--plugin-config", help="file with the whole plugin configuration (verbatim)")
    ap.add_argument("--attributes", help="JSON file with the plugin's `attributes` mapping (a list), or `none`")
    ap.add_argument("--groups", help="the plugin's `groups`: on, off or a JSON object")
    ap.add_argument(
        "--public-jsonapi",
        type=parse_on_off,
        default=False,
        help="on: the public side reaches /jsonapi, JSON logins and Basic auth (decoupled sites); "
        "off (default): Envoy answers those 403",
    )
    ap.add_argument(
        "--emulator-flags",
        metavar="FILE",
        help="print the drupal-emulator arguments for the fields FILE's mapping (`none`: no mapping) "
        "and --groups name, one per line, and exit",
    )
    args = ap.parse_args(argv)

    try:
        attributes = None
        if args.attributes and args.attributes != "none":
            attributes = load_attributes(args.attributes)
        groups = parse_groups(args.groups) if args.groups is not None else None
        if args.emulator_flags:
            mapping = [] if args.emulator_flags == "none" else load_attributes(args.emulator_flags)
            print("\n".join(emulator_field_args(mapping, groups)))
            return 0
    except ValueError as e:
        ap.error(str(e))
    if not args.out:
        ap.error("--out is required")

    tokens = [{"label": label, "sha256": sha256_hex(tok)} for label, tok in args.token]
    tokens += [{"label": label, "sha256": digest} for label, digest in args.token_sha256]
    overrides = {}
    if attributes is not None:
        overrides["attributes"] = attributes
    elif args.attributes == "none":
        overrides["attributes"] = None
    if args.groups is not None:
        overrides["groups"] = groups
    for key, raw in args.set:
        try:
            overrides[key] = json.loads(raw)
        except json.JSONDecodeError:
            overrides[key] = raw
    cfg = render(
        Path(args.template),
        listen=args.listen,
        admin=args.admin,
        drupal_url=args.drupal_url,
        tokens=tokens or None,
        wasm=args.wasm,
        plugin_overrides=overrides,
        plugin_replace=Path(args.plugin_config).read_text() if args.plugin_config else None,
        public_jsonapi=args.public_jsonapi,
    )
    write(cfg, Path(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
