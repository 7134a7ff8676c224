"""deploy/kubernetes/sidecar/: hookwall as a sidecar in transparent mode, checked statically as
test_deploy.py checks the other manifests (whose schema validation, YAML parsing, pod
hardening and `hookwall run` flag checks cover these files too), and the init container's
script run for real in a network namespace of its own.

- The init container's script is exactly what ``hookwall redirect-rules`` accepts: each
  ``hookwall redirect-rules ARGS | TOOL`` line is parsed from the manifest and given to the
  command, for both address families, with the tool that reads that format; its uid and port
  are the hookwall container's.
- The hookwall container's arguments start hookwall with the ConfigMap's policy (its
  --sender is a sender of that policy), and its exec probes pass.
- The pod's order, users and capabilities: rules first (root, NET_ADMIN and NET_RAW only),
  then hookwall (a native sidecar, uid 1337, none), then the app (none, no proxy settings).
- Only the hookwall container sees the CA key and the signing secret; the app gets the CA
  certificate. The policy passes ``hookwall check``; the Secret template's placeholders fail.
- The NetworkPolicy lets the pod out only to DNS and to the internet on 80/443.
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from hookwall.cli.main import main
from tests.integration.test_deploy import (
    DEPLOY,
    K8S,
    REQUIRED_EGRESS_EXCEPT,
    _ports,
    dockerfile_instructions,
    hookwall_check,
    k8s_object,
    load_all,
    option,
    placeholder_secret,
    port_of,
    sidecar_command,
)
from tests.support.nestedns import NestedNetns, python_for, skip_reason

SIDECAR = K8S / "sidecar"
DEPLOYMENT = "billing-sender"
INIT_IMAGE_DOCKERFILE = DEPLOY / "Dockerfile.redirect-init"


def pod() -> dict[str, Any]:
    spec: dict[str, Any] = k8s_object("Deployment", DEPLOYMENT)["spec"]["template"]["spec"]
    return spec


def init_container(name: str) -> dict[str, Any]:
    return next(c for c in pod()["initContainers"] if c["name"] == name)


def app() -> dict[str, Any]:
    containers: list[dict[str, Any]] = pod()["containers"]
    (container,) = containers
    return container


def init_script() -> str:
    container = init_container("redirect")
    assert container["command"] == ["/bin/bash", "-c"], "bash, for set -o pipefail"
    (script,) = container["args"]
    return str(script)


def script_lines() -> list[str]:
    return [line.strip() for line in init_script().splitlines() if line.strip()]


def pipelines() -> list[tuple[list[str], list[str]]]:
    """(redirect-rules arguments, the command its output is piped into), line by line."""
    found = []
    for line in script_lines():
        left, bar, right = line.partition("|")
        argv = shlex.split(left)
        if argv[:2] == ["hookwall", "redirect-rules"]:
            assert bar, f"redirect-rules' output goes nowhere: {line}"
            found.append((argv[2:], shlex.split(right)))
    return found


def redirect_rules(args: list[str]) -> tuple[int, str]:
    """``hookwall redirect-rules ARGS``, through the command's own main."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main(["redirect-rules", *args])
    return code, out.getvalue()


# -- the init container's command ----------------------------------------------------------


def test_init_script_is_what_redirect_rules_accepts() -> None:
    lines = script_lines()
    assert lines[0] == "set -euo pipefail", "a failing redirect-rules must fail the pod"
    tools = {"iptables": "iptables-restore", "ip6tables": "ip6tables-restore"}
    formats = []
    for args, tool in pipelines():
        code, text = redirect_rules(args)
        assert code == 0, f"hookwall redirect-rules {shlex.join(args)} refused"
        fmt = str(option(args, "--format"))
        assert tool == [tools[fmt], "--noflush"], f"{fmt} output piped into {tool}"
        assert "*nat" in text and "REDIRECT" in text
        formats.append(fmt)
    # Both families: an IPv6 connection (to ::1 too) would escape IPv4-only rules.
    assert sorted(formats) == ["ip6tables", "iptables"]
    # The rest of the script only shows what was installed (and fails if it is not there).
    rest = [line for line in lines[1:] if "|" not in line]
    assert rest == ["iptables -t nat -S HOOKWALL_OUTPUT", "ip6tables -t nat -S HOOKWALL_OUTPUT"]


def test_init_script_exempts_hookwalls_uid_and_targets_its_port() -> None:
    hookwall = init_container("hookwall")
    argv = sidecar_command()
    for args, _ in pipelines():
        assert option(args, "--exempt-uid") == str(hookwall["securityContext"]["runAsUser"])
        assert option(args, "--port") == str(port_of(option(argv, "--listen")))
        # The sidecar pattern: every user of the pod but hookwall's, no exclusions.
        assert not {"--uid", "--cgroup", "--exclude-cidr", "--exclude-port"} & set(args)
    listen = str(option(argv, "--listen")).rsplit(":", 1)[0]
    assert ipaddress.ip_address(listen) == ipaddress.ip_address("127.0.0.1")
    assert option(argv, "--mode") == "transparent"
    assert option(argv, "--sender")


@pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason()))
def test_init_script_installs_rules_that_redirect_the_app_and_not_hookwall() -> None:
    """The manifest's script as it is, in a fresh namespace as a pod's would be: the app's
    uid lands on hookwall's port (a stand-in), hookwall's own uid reaches the canary.

    The stand-in takes the manifest's port, 8081: the namespace is new and holds nothing
    else, so the port is free there whatever runs on this host."""
    app_uid = app()["securityContext"]["runAsUser"]
    hookwall_uid = init_container("hookwall")["securityContext"]["runAsUser"]
    for uid in (app_uid, hookwall_uid):
        if python_for(uid) is None:
            pytest.skip(f"no Python interpreter that uid {uid} may run, for the client")
    port = port_of(option(sidecar_command(), "--listen"))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    with (
        NestedNetns() as ns,
        ns.listener("stand-in", port) as stand_in,
        ns.listener("canary") as canary,
    ):
        shown = ns.run(["/bin/bash", "-c", init_script()], env=env).stdout
        assert f"-A HOOKWALL_OUTPUT -p tcp -j REDIRECT --to-ports {port}" in shown
        for host in ("127.0.0.1", "::1"):
            assert ns.connect(host, canary.port, uid=app_uid) == "stand-in"
            assert ns.connect(host, canary.port, uid=hookwall_uid) == "canary"
        assert len(stand_in.stop()) == 2 and len(canary.stop()) == 2


def test_a_failing_redirect_rules_fails_the_script(tmp_path: Path) -> None:
    """pipefail: with a redirect-rules that exits 2 and a restore that accepts anything, the
    script still fails (without it, an empty rule set would pass and the pod start open)."""
    for name, body in (("hookwall", "exit 2"), ("iptables-restore", "cat > /dev/null")):
        tool = tmp_path / name
        tool.write_text(f"#!/bin/sh\n{body}\n")
        tool.chmod(0o755)
    script = "\n".join(line for line in init_script().splitlines() if "iptables -t" not in line)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    result = subprocess.run(["/bin/bash", "-c", script], env=env, capture_output=True, timeout=30)
    assert result.returncode == 2


def replaced(argv: list[str], values: dict[str, str]) -> list[str]:
    """``argv`` with the value of each ``--flag`` in ``values`` replaced."""
    out = list(argv)
    for index, arg in enumerate(out[:-1]):
        if arg in values:
            out[index + 1] = values[arg]
    return out


@pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason()))
def test_the_sidecars_command_starts_and_its_probes_pass(tmp_path: Path) -> None:
    """The hookwall container's arguments as they are (the mounted paths swapped for local
    ones), with the ConfigMap's policy, in a namespace of its own, where the manifest's
    ports are free: hookwall starts on the transparent listener, and each exec probe passes."""
    policy = tmp_path / "policy"
    policy.mkdir()
    for name, text in k8s_object("ConfigMap", "hookwall-sidecar-policy")["data"].items():
        (policy / name).write_text(text)
    hookwall = init_container("hookwall")
    secrets = {e["name"]: placeholder_secret(e["name"]) for e in hookwall["env"]}
    env = {**os.environ, **secrets}
    command = [sys.executable, "-m", "hookwall"]
    ca_dir = tmp_path / "ca"
    made = subprocess.run([*command, "ca", "--data-dir", str(ca_dir)], capture_output=True)
    assert made.returncode == 0, made.stderr
    args = replaced(
        sidecar_command()[1:],
        {
            "--policy": str(policy),
            "--data-dir": str(tmp_path / "data"),
            "--ca": str(ca_dir / "mitmproxy-ca.pem"),
        },
    )
    with NestedNetns() as ns:  # 127.0.0.1 only: no DNS server either, and none is asked
        proc = ns.popen(
            [*command, *args, "--dns-server", "127.0.0.1"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            assert proc.stdout is not None
            started: dict[str, Any] = {}
            for line in proc.stdout:
                event = json.loads(line) if line.startswith("{") else {}
                if event.get("event") == "proxy_started":
                    started = event
                    break
            assert started, f"hookwall did not start: {proc.communicate(timeout=30)[1]}"
            listen = option(args, "--listen")
            assert {"mode": "transparent", "listen": listen} in started["listeners"]
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                exec_argv = hookwall[probe]["exec"]["command"]
                ns.run([sys.executable, *exec_argv[1:]])  # the image's python is this one
        finally:
            proc.terminate()
            proc.communicate(timeout=30)


# -- the pod ---------------------------------------------------------------------------------


def test_pod_order_users_and_capabilities() -> None:
    spec = pod()
    assert [c["name"] for c in spec["initContainers"]] == ["redirect", "hookwall"]
    redirect, hookwall = spec["initContainers"]
    assert "restartPolicy" not in redirect, "the rules are installed once, before anything"
    assert hookwall["restartPolicy"] == "Always", "a native sidecar: up before the app"
    assert hookwall["startupProbe"], "the app starts once hookwall is ready"
    uids = {
        c["name"]: c["securityContext"]["runAsUser"]
        for c in [*spec["initContainers"], *spec["containers"]]
    }
    assert uids["redirect"] == 0
    assert uids["hookwall"] not in {0, uids["app"], spec["securityContext"]["runAsUser"]}
    assert list(uids.values()).count(uids["hookwall"]) == 1, "nothing else runs as hookwall"
    for container in (hookwall, app()):
        assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert container["securityContext"]["runAsNonRoot"] is True
    # Transparent: the app sets no proxy (and so needs no proxy credentials).
    names = {item["name"].upper() for item in app().get("env", [])}
    assert not names & {"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"}
    assert (
        "hookwall-sender"
        not in k8s_object("Deployment", DEPLOYMENT)["spec"]["template"]["metadata"]["labels"]
    ), "the central pattern's label would subject the pod to its policies"


def test_hookwalls_probes_reach_its_loopback_admin_listener() -> None:
    hookwall = init_container("hookwall")
    admin = str(option(sidecar_command(), "--admin-listen"))
    assert ipaddress.ip_address(admin.rsplit(":", 1)[0]).is_loopback
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        command = hookwall[probe]["exec"]["command"]
        assert command[:2] == ["/opt/hookwall/bin/python", "-c"], probe
        assert f"http://{admin}/" in command[2], probe
        assert "ProxyHandler({})" in command[2], probe


def test_only_hookwall_sees_the_ca_key_and_secrets() -> None:
    spec = pod()
    volumes = {v["name"]: v for v in spec["volumes"]}
    hookwall = init_container("hookwall")
    argv = sidecar_command()
    mounts = {m["mountPath"]: m["name"] for m in hookwall["volumeMounts"]}
    ca = Path(str(option(argv, "--ca")))
    ca_volume = volumes[mounts[str(ca.parent)]]["secret"]
    assert ca_volume["secretName"] == "hookwall-sidecar-secrets"
    assert {"key": "ca.pem", "path": ca.name} in ca_volume["items"]
    assert volumes[mounts[str(option(argv, "--policy"))]]["configMap"]["name"] == (
        "hookwall-sidecar-policy"
    )
    secret_volumes = {name for name, v in volumes.items() if "secret" in v}
    for container in [*spec["initContainers"], *spec["containers"]]:
        if container is not hookwall and container["name"] != "hookwall":
            used = {m["name"] for m in container.get("volumeMounts", [])}
            assert not used & secret_volumes, f"{container['name']} mounts a Secret"
            assert not any(
                "secretKeyRef" in e.get("valueFrom", {}) for e in container.get("env", [])
            )
    # The app trusts the CA certificate, from a ConfigMap (no key in it).
    app_mounts = {m["mountPath"]: m["name"] for m in app()["volumeMounts"]}
    cert = Path(next(e["value"] for e in app()["env"] if e["name"] == "SSL_CERT_FILE"))
    assert volumes[app_mounts[str(cert.parent)]]["configMap"]["name"] == "hookwall-ca-cert"
    for container in [hookwall, app()]:
        assert all("subPath" not in m for m in container["volumeMounts"])


def test_sidecar_policy_passes_check_and_the_template_fails(tmp_path: Path) -> None:
    data = k8s_object("ConfigMap", "hookwall-sidecar-policy")["data"]
    policy = tmp_path / "policy"
    policy.mkdir()
    for name, text in data.items():
        (policy / name).write_text(text)
    env_names = [
        e["name"] for e in init_container("hookwall")["env"] if "secretKeyRef" in e["valueFrom"]
    ]
    result = hookwall_check(policy, {name: placeholder_secret(name) for name in env_names})
    assert result.returncode == 0, result.stdout + result.stderr
    template = k8s_object("Secret", "hookwall-sidecar-secrets")["stringData"]
    result = hookwall_check(policy, {name: template[name] for name in env_names})
    assert result.returncode == 1, result.stdout
    # Every env:NAME of the policy comes from the sidecar's Secret, which has the key.
    referenced = {
        word.removeprefix("env:")
        for text in data.values()
        for word in text.replace("[", " ").replace("]", " ").split()
        if word.startswith("env:")
    }
    assert referenced <= set(env_names)
    for item in init_container("hookwall")["env"]:
        ref = item["valueFrom"]["secretKeyRef"]
        assert ref["name"] == "hookwall-sidecar-secrets" and ref["key"] in template


# -- the NetworkPolicy -----------------------------------------------------------------------


def test_networkpolicy_lets_the_pod_out_only_to_dns_and_the_internet() -> None:
    spec = k8s_object("NetworkPolicy", "billing-sender-egress")["spec"]
    labels = k8s_object("Deployment", DEPLOYMENT)["spec"]["template"]["metadata"]["labels"]
    assert spec["podSelector"]["matchLabels"].items() <= labels.items()
    assert spec["policyTypes"] == ["Egress"]
    dns, internet = spec["egress"]
    assert _ports(dns) == {("UDP", 53), ("TCP", 53)}
    (peer,) = dns["to"]
    assert peer["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}
    assert peer["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "kube-system"
    }
    assert _ports(internet) == {("TCP", 80), ("TCP", 443)}
    blocks = {block["ipBlock"]["cidr"]: block["ipBlock"]["except"] for block in internet["to"]}
    assert set(blocks) == {"0.0.0.0/0", "::/0"}
    v4 = [ipaddress.ip_network(c) for c in blocks["0.0.0.0/0"]]
    for required in map(ipaddress.ip_network, REQUIRED_EGRESS_EXCEPT):
        assert any(required.subnet_of(e) for e in v4 if e.version == 4), required  # type: ignore[arg-type]
    v6 = [ipaddress.IPv6Network(c) for c in blocks["::/0"]]
    for v6_required in map(ipaddress.IPv6Network, ["fc00::/7", "fe80::/10", "::1/128"]):
        assert any(v6_required.subnet_of(e) for e in v6), v6_required
    # Same ranges as hookwall's own NetworkPolicy: one list of what receivers may not be.
    central = k8s_object("NetworkPolicy", "hookwall")["spec"]["egress"]
    central_blocks = {
        b["ipBlock"]["cidr"]: b["ipBlock"]["except"]
        for r in central
        for b in r["to"]
        if "ipBlock" in b
    }
    assert central_blocks == blocks


# -- kustomization and the init image --------------------------------------------------------


def test_sidecar_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((SIDECAR / "kustomization.yaml").read_text())
    expected = {p.name for p in SIDECAR.glob("*.yaml")} - {
        "kustomization.yaml",
        "secret.template.yaml",
    }
    assert set(kustomization["resources"]) == expected
    assert kustomization["namespace"] == "billing"
    images = {image["name"] for image in kustomization["images"]}
    used = {c["image"].split(":")[0] for c in [*pod()["initContainers"], *pod()["containers"]]}
    assert used == images
    for path in SIDECAR.glob("*.yaml"):
        for doc in load_all(path):
            assert "namespace" not in doc.get("metadata", {}), f"{path.name}: set by kustomize"


def test_redirect_init_image_is_the_hookwall_image_with_iptables() -> None:
    instructions = dockerfile_instructions(INIT_IMAGE_DOCKERFILE)
    froms = [rest for instr, rest in instructions if instr == "FROM"]
    assert froms == ["${HOOKWALL_IMAGE}"], "built on the hookwall image: the same hookwall"
    runs = " ".join(rest for instr, rest in instructions if instr == "RUN")
    assert "apt-get install -y --no-install-recommends iptables" in runs
    assert "rm -rf /var/lib/apt/lists/*" in runs
    users = [rest for instr, rest in instructions if instr == "USER"]
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0 and gid.isdigit(), "root only where the pod says"
    assert not [rest for instr, rest in instructions if instr in {"COPY", "ADD"}]
    ignore = (DEPLOY / "Dockerfile.redirect-init.dockerignore").read_text().split()
    assert [line for line in ignore if not line.startswith("#")][-1] == "*"


# -- deploy/README.md ----------------------------------------------------------------------


def readme_commands() -> list[str]:
    """Every `hookwall redirect-rules ...` line in deploy/README.md's code blocks."""
    lines = (DEPLOY / "README.md").read_text().splitlines()
    found = []
    inside = False
    for line in lines:
        if line.strip().startswith("```"):
            inside = not inside
        elif inside and line.strip().startswith("hookwall redirect-rules"):
            found.append(line.strip())
    return found


def test_readme_quotes_the_init_script_as_it_is() -> None:
    quoted = [line for line in readme_commands() if "--exempt-uid 1337 --port 8081" in line]
    manifest = [line for line in script_lines() if line.startswith("hookwall redirect-rules")]
    assert quoted == manifest


@pytest.mark.parametrize("line", readme_commands())
def test_every_redirect_rules_command_in_the_readme_is_accepted(line: str) -> None:
    command = line.split("|")[0].split("#")[0]
    code, text = redirect_rules(shlex.split(command)[2:])
    assert code == 0 and text, line
    tool = line.split("|")[1].split("#")[0].split()[0]
    fmt = option(shlex.split(command), "--format")
    assert tool == {"iptables": "iptables-restore", "ip6tables": "ip6tables-restore"}.get(
        str(fmt), "nft"
    ), line
