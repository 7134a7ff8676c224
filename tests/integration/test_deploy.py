"""deploy/: the container image, the docker-compose example, the Kubernetes manifests and the
systemd unit, checked statically (no Docker engine, no cluster, no network).

- Every YAML file parses; every Kubernetes object validates against the Kubernetes OpenAPI
  schema (strict: unknown fields are errors) with ``kubernetes-validate``, whose schemas ship
  inside the package: the validation runs with sockets disabled to prove it is offline.
- Every ``hookwall run`` command line in deploy/ (Dockerfile, compose, Deployment, systemd)
  uses only flags that the real CLI's ``hookwall run --help`` lists. A flag of the deploy
  contract that has not landed yet makes these tests fail until it does, on purpose.
- The policies (the ConfigMap's and the compose demo's) pass ``hookwall check`` with
  placeholder secrets in the environment, as the Deployment would provide them.
- The security settings are present: Pod/container securityContext, NetworkPolicy ranges,
  the image's non-root user and read-only-friendly layout, the unit's sandboxing.
"""

from __future__ import annotations

import base64
import http.server
import ipaddress
import json
import os
import re
import secrets
import shlex
import socket
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.paths import REPO

ROOT = REPO
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "docker-compose.yml"
UNIT = DEPLOY / "hookwall.service"
HOOKWALL = Path(sys.executable).with_name("hookwall")

PROXY_PORT = 8080
ADMIN_PORT = 9090
DATA_DIR = "/var/lib/hookwall"
POLICY_DIR = "/etc/hookwall/policy"
IMAGE_UID = 10001
DRAIN_SECONDS = 10  # hookwall's SIGTERM drain bound

# The oldest Kubernetes the manifests target (preStop `sleep` is beta and on by default from
# 1.30) and the newest schema the validator ships.
MIN_KUBERNETES = "1.30"


# Ranges the hookwall NetworkPolicy must keep out of its internet egress rule.
REQUIRED_EGRESS_EXCEPT = [
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "169.254.0.0/16",
    "100.64.0.0/10",
    "127.0.0.0/8",
]


# -- helpers --------------------------------------------------------------------------------------


def load_all(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def yaml_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml"))


def k8s_objects() -> list[tuple[Path, dict[str, Any]]]:
    objects: list[tuple[Path, dict[str, Any]]] = []
    for path in sorted(K8S.rglob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        objects.extend((path, doc) for doc in load_all(path))
    return objects


def k8s_object(kind: str, name: str) -> dict[str, Any]:
    found = [d for _, d in k8s_objects() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name} in deploy/kubernetes, found {len(found)}"
    return found[0]


def hookwall_container() -> dict[str, Any]:
    pod = k8s_object("Deployment", "hookwall")["spec"]["template"]["spec"]
    return next(c for c in pod["containers"] if c["name"] == "hookwall")


def option(argv: list[str], flag: str) -> str | None:
    """The value of `--flag VALUE` or `--flag=VALUE` in argv (None when absent)."""
    for i, arg in enumerate(argv):
        if arg == flag:
            return argv[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def port_of(hostport: str | None) -> int:
    assert hostport, "no HOST:PORT given"
    return int(hostport.rsplit(":", 1)[1])


def dockerfile_instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not pending):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        pending += line
        instruction, _, rest = pending.partition(" ")
        out.append((instruction.upper(), rest.strip()))
        pending = ""
    return out


def dockerfile(instruction: str) -> list[str]:
    return [rest for instr, rest in dockerfile_instructions() if instr == instruction]


def dockerfile_command() -> list[str]:
    """ENTRYPOINT + CMD of the final stage, both in exec (JSON) form."""
    entrypoint = json.loads(dockerfile("ENTRYPOINT")[-1])
    cmd = json.loads(dockerfile("CMD")[-1])
    return [*entrypoint, *cmd]


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for rest in dockerfile("ENV"):
        for item in shlex.split(rest):
            name, _, value = item.partition("=")
            env[name] = value
    return env


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def compose_command() -> list[str]:
    service = compose()["services"]["hookwall"]
    entrypoint = service.get("entrypoint") or json.loads(dockerfile("ENTRYPOINT")[-1])
    return [*entrypoint, *service["command"]]


def deployment_command() -> list[str]:
    container = hookwall_container()
    entrypoint = container.get("command") or json.loads(dockerfile("ENTRYPOINT")[-1])
    return [*entrypoint, *container["args"]]


def unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    pending = ""
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if line.startswith(("#", ";", "[")) or (not line and not pending):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        key, _, value = (pending + line).partition("=")
        settings.setdefault(key.strip(), []).append(value.strip())
        pending = ""
    return settings


def unit_command() -> list[str]:
    return shlex.split(unit_settings()["ExecStart"][0])


def sidecar_command() -> list[str]:
    """The hookwall sidecar's command line in the sidecar recipe (kubernetes/sidecar/)."""
    pod = k8s_object("Deployment", "billing-sender")["spec"]["template"]["spec"]
    container = next(c for c in pod["initContainers"] if c["name"] == "hookwall")
    entrypoint = container.get("command") or json.loads(dockerfile("ENTRYPOINT")[-1])
    return [*entrypoint, *container["args"]]


COMMANDS = {
    "Dockerfile": dockerfile_command,
    "docker-compose.yml": compose_command,
    "kubernetes/deployment.yaml": deployment_command,
    "kubernetes/sidecar/deployment.yaml": sidecar_command,
    "hookwall.service": unit_command,
}


@pytest.fixture(scope="module")
def run_flags() -> set[str]:
    """Every long option `hookwall run --help` documents."""
    result = subprocess.run(
        [str(HOOKWALL), "run", "--help"], capture_output=True, text=True, timeout=30, check=True
    )
    flags = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", result.stdout))
    assert {"--policy", "--listen", "--data-dir"} <= flags, result.stdout
    return flags


def placeholder_secret(name: str) -> str:
    """A well-formed stand-in for a secret the Deployment takes from the Secret."""
    if name.endswith("WHSEC"):
        return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    return secrets.token_urlsafe(32)


def secret_env_names() -> list[str]:
    return [
        item["name"]
        for item in hookwall_container().get("env", [])
        if "secretKeyRef" in item.get("valueFrom", {})
    ]


def hookwall_check(policy: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in env}
    return subprocess.run(
        [str(HOOKWALL), "check", str(policy)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**base, **env},
    )


def write_configmap_policy(target: Path, skip: frozenset[str] | set[str] = frozenset()) -> Path:
    target.mkdir()
    for name, text in k8s_object("ConfigMap", "hookwall-policy")["data"].items():
        if name not in skip:
            (target / name).write_text(text)
    return target


# -- every YAML file ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_yaml_parses(path: Path) -> None:
    assert load_all(path), f"{path} holds no YAML document"


# -- Kubernetes: schema ---------------------------------------------------------------------------


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a connection or resolve a name fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def _validator() -> Any:
    try:
        import kubernetes_validate  # type: ignore[import-untyped]
        import kubernetes_validate.utils  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - a missing dev dependency is a failure, not a skip
        pytest.fail("kubernetes-validate is a dev dependency: pip install kubernetes-validate")
    return kubernetes_validate


@pytest.mark.parametrize(
    ("path", "obj"),
    k8s_objects(),
    ids=[f"{p.relative_to(K8S)}:{d['kind']}/{d['metadata']['name']}" for p, d in k8s_objects()],
)
def test_kubernetes_object_is_schema_valid(path: Path, obj: dict[str, Any], offline: None) -> None:
    validator = _validator()
    latest = validator.utils.latest_version()
    for version in sorted({MIN_KUBERNETES, latest}):
        try:
            validator.validate(obj, version, strict=True)
        except validator.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path)
            pytest.fail(
                f"{path.name}: {obj['kind']} invalid for Kubernetes {version}: {where}: "
                f"{exc.message}"
            )


def test_schema_validation_catches_mistakes(offline: None) -> None:
    """The validator is not a no-op: an unknown field, a wrong type, a missing name fail."""
    validator = _validator()
    mutations: list[Callable[[dict[str, Any]], object]] = [
        lambda c: c["securityContext"].update(readOnlyRootFS=True),
        lambda c: c["ports"][0].update(containerPort="eighty"),
        lambda c: c.pop("name"),
    ]
    for mutate in mutations:
        deployment = yaml.safe_load((K8S / "deployment.yaml").read_text())
        mutate(deployment["spec"]["template"]["spec"]["containers"][0])
        with pytest.raises(validator.ValidationError):
            validator.validate(deployment, MIN_KUBERNETES, strict=True)


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = kustomization["resources"]
    for name in listed:
        assert (K8S / name).is_file(), f"kustomization.yaml lists a missing file: {name}"
    not_listed = {"kustomization.yaml", "secret.template.yaml"}
    expected = {p.name for p in K8S.glob("*.yaml")} - not_listed
    assert set(listed) == expected
    # The Secret template holds placeholders: applying it would overwrite the real Secret.
    assert "secret.template.yaml" not in listed
    assert kustomization["namespace"] == "hookwall"
    labels = k8s_object("Namespace", "hookwall")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


# -- the hookwall command lines -------------------------------------------------------------------


@pytest.mark.parametrize("where", sorted(COMMANDS))
def test_command_is_hookwall_run_with_known_flags(where: str, run_flags: set[str]) -> None:
    argv = COMMANDS[where]()
    assert Path(argv[0]).name == "hookwall", f"{where}: runs {argv[0]}, not hookwall"
    assert argv[1] == "run", f"{where}: expected `hookwall run ...`, got {argv[1:]}"
    used = [arg.split("=", 1)[0] for arg in argv[2:] if arg.startswith("--")]
    unknown = sorted(set(used) - run_flags)
    assert not unknown, (
        f"{where} uses flags that `hookwall run --help` does not list: {', '.join(unknown)}"
    )
    assert option(argv, "--policy"), f"{where}: no --policy"
    assert option(argv, "--data-dir"), f"{where}: no --data-dir"


@pytest.mark.parametrize(
    "where", ["Dockerfile", "docker-compose.yml", "kubernetes/deployment.yaml"]
)
def test_container_commands_agree_with_the_image(where: str) -> None:
    argv = COMMANDS[where]()
    assert option(argv, "--policy") == POLICY_DIR
    assert option(argv, "--data-dir") == DATA_DIR == dockerfile_env()["HOOKWALL_DATA_DIR"]
    # Reachable from outside the container: the Service, kubelet probes, Prometheus.
    assert option(argv, "--listen") == f"0.0.0.0:{PROXY_PORT}"
    assert option(argv, "--admin-listen") == f"0.0.0.0:{ADMIN_PORT}"


def test_unit_command() -> None:
    argv = unit_command()
    settings = unit_settings()
    assert argv[0] == "/opt/hookwall/.venv/bin/hookwall"
    assert option(argv, "--data-dir") == "/var/lib/" + settings["StateDirectory"][0]
    assert str(option(argv, "--policy")).startswith(settings["ReadOnlyPaths"][0])
    # On a host the proxy and the admin listener stay on loopback.
    for flag in ("--listen", "--admin-listen"):
        host = str(option(argv, flag)).rsplit(":", 1)[0]
        assert ipaddress.ip_address(host).is_loopback, f"{flag} {host}"


# -- Dockerfile -----------------------------------------------------------------------------------


def test_dockerfile_base_image_is_pinned_and_shared_by_stages() -> None:
    args = dict(rest.split("=", 1) for rest in dockerfile("ARG") if "=" in rest)
    stages = [rest.split() for rest in dockerfile("FROM")]
    assert len(stages) >= 2, "multi-stage: build the venv, then copy it"
    images = {re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], s[0]) for s in stages}
    assert len(images) == 1, f"both stages must use one base (the venv links to it): {images}"
    (image,) = images
    assert re.fullmatch(r"python:3\.12\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", image), image
    assert [s[-1] for s in stages] == ["build", "runtime"]


def test_dockerfile_installs_the_lock_with_hashes() -> None:
    runs = " ".join(dockerfile("RUN"))
    assert "--require-hashes" in runs and "-r requirements.lock" in runs
    assert "--only-binary=:all:" in runs
    assert "--no-index" in runs and "--no-build-isolation" in runs
    assert any(rest.startswith("--from=build /opt/hookwall") for rest in dockerfile("COPY"))
    instructions = " ".join(rest for _, rest in dockerfile_instructions())
    assert not re.search(r"\b(curl|wget)\b", instructions), (
        "no curl/wget in the image: the healthcheck uses Python's stdlib"
    )


def test_dockerfile_copies_only_what_exists_and_the_dockerignore_admits() -> None:
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in ignore if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*", "an allowlist: everything is excluded unless re-included"
    admitted = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    for rest in dockerfile("COPY"):
        if rest.startswith("--from="):
            continue
        *sources, _dest = rest.split()
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
            assert source.rstrip("/") in admitted, f"COPY {source}: excluded by .dockerignore"
    for secret_like in (".git", ".venv", ".env"):
        assert secret_like not in admitted


def test_dockerfile_runtime_user_and_read_only_layout() -> None:
    (user,) = dockerfile("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) == IMAGE_UID != 0, "numeric, so runAsNonRoot can verify it"
    assert gid.isdigit() and int(gid) != 0
    env = dockerfile_env()
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["HOOKWALL_DATA_DIR"] == DATA_DIR
    assert json.loads(dockerfile("VOLUME")[-1]) == [DATA_DIR]
    assert {int(p) for rest in dockerfile("EXPOSE") for p in rest.split()} == {
        PROXY_PORT,
        ADMIN_PORT,
    }
    assert dockerfile("STOPSIGNAL") == ["SIGTERM"]
    assert json.loads(dockerfile("ENTRYPOINT")[-1]) == ["/opt/hookwall/bin/hookwall"]


def healthcheck_argv() -> list[str]:
    (rest,) = dockerfile("HEALTHCHECK")
    options, _, command = rest.partition(" CMD ")
    assert "--interval=" in options and "--timeout=" in options
    argv: list[str] = json.loads(command)
    return argv


class _Admin(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def admin_server() -> Iterator[tuple[str, type[_Admin]]]:
    handler = type("Handler", (_Admin,), {"status": 200})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/healthz", handler
    finally:
        server.shutdown()
        server.server_close()


def test_dockerfile_healthcheck_uses_stdlib_and_works(
    admin_server: tuple[str, type[_Admin]],
) -> None:
    argv = healthcheck_argv()
    assert argv[0] == "/opt/hookwall/bin/python" and argv[1] == "-c"
    default_url = urllib.parse.urlsplit(dockerfile_env()["HOOKWALL_HEALTHCHECK_URL"])
    assert (default_url.hostname, default_url.port, default_url.path) == (
        "127.0.0.1",
        ADMIN_PORT,
        "/healthz",
    )
    url, handler = admin_server
    # Run the exact command with this interpreter, against a stand-in admin listener; a
    # HTTP_PROXY in the environment must not divert it.
    env = {**os.environ, "HOOKWALL_HEALTHCHECK_URL": url, "HTTP_PROXY": "http://127.0.0.1:9"}
    command = [sys.executable, *argv[1:]]
    assert subprocess.run(command, env=env, capture_output=True, timeout=30).returncode == 0
    handler.status = 503
    assert subprocess.run(command, env=env, capture_output=True, timeout=30).returncode != 0


# -- docker-compose -------------------------------------------------------------------------------


def test_compose_services_and_ports() -> None:
    services = compose()["services"]
    assert set(services) == {"hookwall", "sender", "receiver"}
    hookwall = services["hookwall"]
    assert hookwall["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    assert {int(p) for p in hookwall["expose"]} == {PROXY_PORT, ADMIN_PORT}
    # The admin port is published on the host's loopback only; the proxy not at all.
    assert hookwall["ports"] == [f"127.0.0.1:{ADMIN_PORT}:{ADMIN_PORT}"]
    assert hookwall["user"] == f"{IMAGE_UID}:{IMAGE_UID}"
    healthcheck_url = urllib.parse.urlsplit(hookwall["environment"]["HOOKWALL_HEALTHCHECK_URL"])
    assert (healthcheck_url.port, healthcheck_url.path) == (ADMIN_PORT, "/readyz")

    argv = compose_command()
    mounts = {m.split(":")[1]: m.split(":")[0] for m in hookwall["volumes"]}
    assert mounts[option(argv, "--data-dir")] == "hookwall-data"
    assert (COMPOSE.parent / mounts[option(argv, "--policy")]).is_dir()

    # The sender's proxy is hookwall's listener, with a sender name the policy knows.
    sender_env = services["sender"]["environment"]
    policy = yaml.safe_load((DEPLOY / "compose/policy/hookwall.yaml").read_text())
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        proxy = urllib.parse.urlsplit(sender_env[var])
        assert (proxy.hostname, proxy.port) == ("hookwall", port_of(option(argv, "--listen")))
        assert proxy.username in policy["senders"]
    assert services["sender"]["depends_on"]["hookwall"]["condition"] == "service_healthy"

    # The receiver listens where the policy's exception and the sender's URL point.
    receiver_port = port_of(option(services["receiver"]["command"], "--listen"))
    assert {int(p) for p in services["receiver"]["expose"]} == {receiver_port}
    (rule,) = [d for d in policy["destinations"] if d["hosts"] == ["receiver"]]
    assert rule["network"]["ports"] == [receiver_port]
    assert f"http://receiver:{receiver_port}/" in (DEPLOY / "compose/send-webhook.py").read_text()


def test_compose_hardening_and_networks() -> None:
    doc = compose()
    policy = yaml.safe_load((DEPLOY / "compose/policy/hookwall.yaml").read_text())
    for name, service in doc["services"].items():
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
        assert not service["user"].startswith("0"), name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (COMPOSE.parent / source).exists(), f"{name}: {source} does not exist"
    networks = doc["networks"]
    subnet = {n: networks[n]["ipam"]["config"][0]["subnet"] for n in ("senders", "receivers")}
    assert networks["senders"]["internal"] and networks["receivers"]["internal"]
    assert doc["services"]["sender"]["networks"] == ["senders"]
    assert doc["services"]["receiver"]["networks"] == ["receivers"]
    assert policy["senders"]["demo"]["clients"] == [subnet["senders"]]
    (rule,) = [d for d in policy["destinations"] if d["hosts"] == ["receiver"]]
    assert rule["network"]["allow"] == [subnet["receivers"]]


def test_compose_policy_passes_check() -> None:
    env = {"DEMO_WHSEC": placeholder_secret("DEMO_WHSEC"), "DEMO_SENDER_TOKEN": "x" * 32}
    result = hookwall_check(DEPLOY / "compose/policy", env)
    assert result.returncode == 0, result.stdout + result.stderr


# -- Kubernetes: policy and secrets ---------------------------------------------------------------


def test_configmap_policy_passes_check(tmp_path: Path) -> None:
    """The whole policy, as mounted. Fails until shared limits (limits.backend) land."""
    env = {name: placeholder_secret(name) for name in secret_env_names()}
    result = hookwall_check(write_configmap_policy(tmp_path / "policy"), env)
    assert result.returncode == 0, result.stdout + result.stderr


def test_secret_template_placeholders_fail_closed(tmp_path: Path) -> None:
    """A pod started with the unedited template refuses to start instead of running."""
    template = k8s_object("Secret", "hookwall-secrets")["stringData"]
    env = {name: template[name] for name in secret_env_names()}
    policy = write_configmap_policy(tmp_path / "policy")
    result = hookwall_check(policy, env)
    assert result.returncode == 1, result.stdout
    referenced = re.findall(r"env:(\w+)", "\n".join(p.read_text() for p in policy.iterdir()))
    for name in referenced:  # each placeholder is refused on its own
        assert f"env:{name}" in result.stderr, result.stderr
    for value in env.values():
        assert value not in result.stdout + result.stderr


def test_secrets_wiring() -> None:
    """Every env:NAME of the policy comes from the Secret, and every key used exists in it."""
    policy_text = "\n".join(k8s_object("ConfigMap", "hookwall-policy")["data"].values())
    referenced = set(re.findall(r"env:([A-Za-z_][A-Za-z0-9_]*)", policy_text))
    provided = set(secret_env_names())
    assert referenced <= provided, f"not provided by the Deployment: {referenced - provided}"
    template = k8s_object("Secret", "hookwall-secrets")
    for item in hookwall_container()["env"]:
        ref = item["valueFrom"]["secretKeyRef"]
        assert ref["name"] == "hookwall-secrets" and ref["key"] in template["stringData"]
    assert "HOOKWALL_ADMIN_TOKEN" in provided  # /metrics needs the bearer token
    assert all("REPLACE_ME" in value for value in template["stringData"].values())

    pod = k8s_object("Deployment", "hookwall")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in hookwall_container()["volumeMounts"]}
    ca = Path(option(deployment_command(), "--ca"))  # type: ignore[arg-type]
    ca_volume = volumes[mounts[str(ca.parent)]["name"]]["secret"]
    assert ca_volume["secretName"] == "hookwall-secrets"
    assert {"key": "ca.pem", "path": ca.name} in ca_volume["items"]
    assert "ca.pem" in template["stringData"]
    assert volumes[mounts[POLICY_DIR]["name"]]["configMap"]["name"] == "hookwall-policy"
    assert "subPath" not in mounts[POLICY_DIR], "subPath mounts never see ConfigMap updates"


def test_redis_backend_points_at_the_redis_service() -> None:
    data = k8s_object("ConfigMap", "hookwall-policy")["data"]
    policy = yaml.safe_load(data["30-shared-limits.yaml"])
    url = urllib.parse.urlsplit(policy["limits"]["backend"])
    service = k8s_object("Service", "hookwall-redis")
    assert url.scheme == "redis"
    assert url.hostname == "hookwall-redis.hookwall.svc.cluster.local"
    assert url.port in {p["port"] for p in service["spec"]["ports"]}


# -- Kubernetes: workload hardening ---------------------------------------------------------------


def deployments() -> list[dict[str, Any]]:
    return [d for _, d in k8s_objects() if d["kind"] == "Deployment"]


# The one container allowed root and capabilities: the sidecar recipe's init container that
# installs the redirect rules (kubernetes/sidecar/), and only these two capabilities.
REDIRECT_INIT_CAPABILITIES = {"drop": ["ALL"], "add": ["NET_ADMIN", "NET_RAW"]}


def installs_redirect_rules(container: dict[str, Any]) -> bool:
    """A one-shot init container whose script pipes `hookwall redirect-rules` into a tool."""
    script = " ".join([*container.get("command", []), *container.get("args", [])])
    return "hookwall redirect-rules" in script and container.get("restartPolicy") != "Always"


@pytest.mark.parametrize("name", [d["metadata"]["name"] for d in deployments()])
def test_pods_are_hardened(name: str) -> None:
    pod = k8s_object("Deployment", name)["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["runAsUser"] != 0
    assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
    init = pod.get("initContainers", [])
    # What runs for the pod's life: its containers and native sidecars (restartPolicy Always).
    long_running = pod["containers"] + [c for c in init if c.get("restartPolicy") == "Always"]
    for container in pod["containers"] + init:
        sc = container["securityContext"]
        if container in init and installs_redirect_rules(container):
            assert sc["runAsUser"] == 0 and sc["runAsNonRoot"] is False, container["name"]
            assert sc["capabilities"] == REDIRECT_INIT_CAPABILITIES, container["name"]
        else:
            assert sc["runAsNonRoot"] is True, container["name"]
            assert sc["capabilities"] == {"drop": ["ALL"]}, container["name"]
        assert sc["readOnlyRootFilesystem"] is True, container["name"]
        assert sc["allowPrivilegeEscalation"] is False, container["name"]
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, container["name"]
        assert sc.get("privileged", False) is False, container["name"]
        assert {"requests", "limits"} <= set(container["resources"]), container["name"]
        if container in long_running:
            assert container.get("livenessProbe") and container.get("readinessProbe")
        assert "latest" not in container["image"] and ":" in container["image"]


def test_hookwall_deployment() -> None:
    deployment = k8s_object("Deployment", "hookwall")
    pod = deployment["spec"]["template"]["spec"]
    container = hookwall_container()
    argv = deployment_command()
    assert deployment["spec"]["replicas"] == 3
    assert (
        pod["securityContext"]["runAsUser"]
        == IMAGE_UID
        == container["securityContext"]["runAsUser"]
    )
    assert int(option(argv, "--workers") or 1) >= 1

    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"proxy": PROXY_PORT, "admin": ADMIN_PORT}
    assert port_of(option(argv, "--listen")) == ports["proxy"]
    assert port_of(option(argv, "--admin-listen")) == ports["admin"]
    for probe, path in (
        ("readinessProbe", "/readyz"),
        ("livenessProbe", "/healthz"),
        ("startupProbe", "/readyz"),
    ):
        assert container[probe]["httpGet"] == {"path": path, "port": "admin"}, probe

    # Drain (10 s) after the preStop pause must fit in the grace period, with room to spare.
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] > pre_stop + DRAIN_SECONDS

    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    data = next(m for m in container["volumeMounts"] if m["mountPath"] == DATA_DIR)
    assert "emptyDir" in volumes[data["name"]] and not data.get("readOnly")
    assert {POLICY_DIR, DATA_DIR, "/tmp"} <= mounts

    keys = {c["topologyKey"] for c in pod["topologySpreadConstraints"]}
    assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
    selector = deployment["spec"]["selector"]["matchLabels"]
    for constraint in pod["topologySpreadConstraints"]:
        assert constraint["labelSelector"]["matchLabels"] == selector


def test_service_pdb_hpa_target_the_deployment() -> None:
    deployment = k8s_object("Deployment", "hookwall")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    service = k8s_object("Service", "hookwall")
    assert service["spec"]["selector"].items() <= labels.items()
    ports = {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]}
    assert ports == {"proxy": (PROXY_PORT, "proxy"), "admin": (ADMIN_PORT, "admin")}
    pdb = k8s_object("PodDisruptionBudget", "hookwall")
    assert pdb["spec"]["selector"]["matchLabels"] == selector
    assert pdb["spec"]["maxUnavailable"] == 1
    hpa = k8s_object("HorizontalPodAutoscaler", "hookwall")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "hookwall",
    }
    assert hpa["spec"]["minReplicas"] >= pdb["spec"]["maxUnavailable"] + 2
    assert hpa["spec"]["minReplicas"] == deployment["spec"]["replicas"]


# -- Kubernetes: NetworkPolicy --------------------------------------------------------------------


def _ports(rule: dict[str, Any]) -> set[tuple[str, int]]:
    return {(p.get("protocol", "TCP"), p["port"]) for p in rule.get("ports", [])}


def test_networkpolicy_egress_reaches_only_internet_dns_and_redis() -> None:
    policy = k8s_object("NetworkPolicy", "hookwall")["spec"]
    pod_labels = k8s_object("Deployment", "hookwall")["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    internet = [
        block["ipBlock"]
        for rule in policy["egress"]
        for block in rule["to"]
        if "ipBlock" in block and ipaddress.ip_network(block["ipBlock"]["cidr"]).prefixlen == 0
    ]
    ipv4 = [b for b in internet if b["cidr"] == "0.0.0.0/0"]
    assert ipv4, "no 0.0.0.0/0 egress rule"
    for block in internet:
        excepted = [ipaddress.ip_network(c) for c in block["except"]]
        if block["cidr"] == "0.0.0.0/0":
            v4 = [e for e in excepted if isinstance(e, ipaddress.IPv4Network)]
            for required in map(ipaddress.IPv4Network, REQUIRED_EGRESS_EXCEPT):
                assert any(required.subnet_of(e) for e in v4), (
                    f"{required} is not excepted from the internet egress rule"
                )
        else:
            v6 = [e for e in excepted if isinstance(e, ipaddress.IPv6Network)]
            for v6_required in map(ipaddress.IPv6Network, ["fc00::/7", "fe80::/10", "::1/128"]):
                assert any(v6_required.subnet_of(e) for e in v6), v6_required
    for rule in policy["egress"]:
        assert rule.get("to"), "an egress rule without `to` allows every destination"
        assert rule.get("ports"), "an egress rule without `ports` allows every port"
        if any("ipBlock" in block for block in rule["to"]):
            assert _ports(rule) == {("TCP", 80), ("TCP", 443)}
            assert all("ipBlock" in block for block in rule["to"])
            assert all(block["ipBlock"].get("except") for block in rule["to"])
    dns = [r for r in policy["egress"] if _ports(r) == {("UDP", 53), ("TCP", 53)}]
    assert len(dns) == 1
    redis_labels = k8s_object("Deployment", "hookwall-redis")["spec"]["template"]["metadata"][
        "labels"
    ]
    (redis,) = [r for r in policy["egress"] if _ports(r) == {("TCP", 6379)}]
    assert redis["to"][0]["podSelector"]["matchLabels"].items() <= redis_labels.items()


def test_networkpolicy_ingress_lets_senders_reach_only_the_proxy_port() -> None:
    policy = k8s_object("NetworkPolicy", "hookwall")["spec"]
    for rule in policy["ingress"]:
        assert rule.get("from"), "an ingress rule without `from` admits everyone"
        assert rule.get("ports"), "an ingress rule without `ports` opens every port"
    sender_rules = [
        r
        for r in policy["ingress"]
        if any(
            peer.get("podSelector", {}).get("matchLabels") == {"hookwall-sender": "true"}
            for peer in r["from"]
        )
    ]
    assert len(sender_rules) == 1
    assert _ports(sender_rules[0]) == {("TCP", PROXY_PORT)}
    admin_rules = [r for r in policy["ingress"] if ("TCP", ADMIN_PORT) in _ports(r)]
    assert admin_rules and all(r not in sender_rules for r in admin_rules)
    for peer in sender_rules[0]["from"]:
        assert "ipBlock" not in peer


def test_sender_namespace_policy_lets_senders_reach_only_hookwall() -> None:
    (policy,) = load_all(K8S / "sender-namespace/networkpolicy-sender-egress.yaml")
    spec = policy["spec"]
    assert spec["podSelector"]["matchLabels"] == {"hookwall-sender": "true"}
    assert spec["policyTypes"] == ["Egress"]
    pod_labels = k8s_object("Deployment", "hookwall")["spec"]["template"]["metadata"]["labels"]
    to_hookwall = [r for r in spec["egress"] if _ports(r) == {("TCP", PROXY_PORT)}]
    (rule,) = to_hookwall
    (peer,) = rule["to"]
    assert peer["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "hookwall"}
    others = [r for r in spec["egress"] if r is not rule]
    assert [_ports(r) for r in others] == [{("UDP", 53), ("TCP", 53)}]


def test_redis_is_reachable_only_from_hookwall() -> None:
    spec = k8s_object("NetworkPolicy", "hookwall-redis")["spec"]
    assert set(spec["policyTypes"]) == {"Ingress", "Egress"} and spec["egress"] == []
    (rule,) = spec["ingress"]
    pod_labels = k8s_object("Deployment", "hookwall")["spec"]["template"]["metadata"]["labels"]
    (peer,) = rule["from"]
    assert peer["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert _ports(rule) == {("TCP", 6379)}


# -- systemd --------------------------------------------------------------------------------------


def test_unit_is_sandboxed_and_drains() -> None:
    settings = {key: values[-1] for key, values in unit_settings().items()}
    assert settings["User"] == "hookwall" and settings["Type"] == "exec"
    assert settings["KillSignal"] == "SIGTERM" and settings["KillMode"] == "mixed"
    assert int(settings["TimeoutStopSec"]) > DRAIN_SECONDS
    expected = {
        "NoNewPrivileges": "yes",
        "CapabilityBoundingSet": "",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectControlGroups": "yes",
        "RestrictNamespaces": "yes",
        "RestrictSUIDSGID": "yes",
        "LockPersonality": "yes",
        "MemoryDenyWriteExecute": "yes",
        "SystemCallArchitectures": "native",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
        "UMask": "0077",
    }
    for key, value in expected.items():
        assert settings.get(key) == value, f"{key}={settings.get(key)!r}, expected {value!r}"
    assert "@system-service" in unit_settings()["SystemCallFilter"]
    assert "PYTHONDONTWRITEBYTECODE=1" in settings["Environment"]
