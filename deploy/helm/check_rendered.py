#!/usr/bin/env python3
"""Check the invariants of a rendered kai-server release that a schema cannot express.

    check_rendered.py MANIFESTS.yaml

kubernetes-validate checks each object against the Kubernetes schema. This script
checks what the chart promises beyond the schema:

- probes on /health and /ready, a non-root pod with a read-only root filesystem;
- a grace period longer than the server's shutdown timeout;
- Prometheus annotations and the Service's DNS names in KAI_ALLOWED_HOSTS;
- no secret in the ConfigMap, and one replica with the Recreate strategy on SQLite;
- an HPA and a PDB that point at the Deployment.

Exit status: 0 when every check passes, 1 otherwise (each failure is printed).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

SECRET_VARIABLES = ("JWT_SECRET", "KAI_DATABASE_URL", "PARAM_DB_CONNECTION")


class Checker:
    """Collects failed checks so one run reports all of them."""

    def __init__(self) -> None:
        self.failures: list[str] = []

    def check(self, condition: bool, message: str) -> None:
        if not condition:
            self.failures.append(message)


def only(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [item for item in objects if item.get("kind") == kind]


def check_container(checker: Checker, container: dict[str, Any]) -> None:
    probes = {
        "startupProbe": "/health",
        "livenessProbe": "/health",
        "readinessProbe": "/ready",
    }
    for probe, path in probes.items():
        actual = container.get(probe, {}).get("httpGet", {}).get("path")
        checker.check(actual == path, f"{probe} requests {actual!r}, expected {path!r}")

    security = container.get("securityContext", {})
    checker.check(
        security.get("readOnlyRootFilesystem") is True,
        "the container's root filesystem is not read-only",
    )
    checker.check(
        security.get("allowPrivilegeEscalation") is False,
        "the container allows privilege escalation",
    )
    checker.check(
        security.get("capabilities", {}).get("drop") == ["ALL"],
        "the container does not drop ALL capabilities",
    )
    mounts = {mount["mountPath"] for mount in container.get("volumeMounts", [])}
    for path in ("/data", "/tmp"):
        checker.check(path in mounts, f"{path} has no writable volume")


def check_release(objects: list[dict[str, Any]]) -> list[str]:
    checker = Checker()
    deployments = only(objects, "Deployment")
    configmaps = only(objects, "ConfigMap")
    services = only(objects, "Service")
    if len(deployments) != 1 or len(configmaps) != 1 or len(services) != 1:
        return [
            f"expected one Deployment, ConfigMap and Service, got {len(deployments)}, "
            f"{len(configmaps)} and {len(services)}"
        ]
    deployment, configmap, service = deployments[0], configmaps[0], services[0]
    name = deployment["metadata"]["name"]
    namespace = deployment["metadata"]["namespace"]
    settings = configmap.get("data", {})
    pod = deployment["spec"]["template"]
    spec = pod["spec"]
    container = spec["containers"][0]

    check_container(checker, container)

    security = spec.get("securityContext", {})
    checker.check(security.get("runAsNonRoot") is True, "the pod does not set runAsNonRoot")
    checker.check(
        isinstance(security.get("runAsUser"), int) and security["runAsUser"] > 0,
        "the pod does not run as a numeric non-root user",
    )

    shutdown_ms = int(settings.get("KAI_SHUTDOWN_TIMEOUT_MS", "30000"))
    grace_s = spec.get("terminationGracePeriodSeconds", 30)
    checker.check(
        grace_s * 1000 > shutdown_ms,
        f"terminationGracePeriodSeconds {grace_s} does not exceed "
        f"KAI_SHUTDOWN_TIMEOUT_MS {shutdown_ms}",
    )

    annotations = pod["metadata"].get("annotations", {})
    checker.check(
        annotations.get("prometheus.io/scrape") == "true"
        and annotations.get("prometheus.io/path") == "/metrics",
        "the pod has no Prometheus scrape annotations for /metrics",
    )

    for variable in SECRET_VARIABLES:
        checker.check(variable not in settings, f"the ConfigMap contains {variable}")
    env = {item["name"]: item for item in container.get("env", [])}
    for variable in SECRET_VARIABLES:
        if variable in env:
            checker.check(
                "secretKeyRef" in env[variable].get("valueFrom", {}),
                f"{variable} is not read from a Secret",
            )

    port = service["spec"]["ports"][0]["port"]
    checker.check(service["spec"].get("type") == "ClusterIP", "the Service is not ClusterIP")
    checker.check(
        str(port) == settings.get("MCP_SERVER_PORT"),
        f"the Service port {port} differs from MCP_SERVER_PORT",
    )
    allowed = settings.get("KAI_ALLOWED_HOSTS", "").split(",")
    for host in (
        name,
        f"{name}.{namespace}",
        f"{name}.{namespace}.svc",
        f"{name}.{namespace}.svc.cluster.local",
    ):
        for entry in (host, f"{host}:{port}"):
            checker.check(entry in allowed, f"KAI_ALLOWED_HOSTS lacks {entry}")

    autoscalers = only(objects, "HorizontalPodAutoscaler")
    for autoscaler in autoscalers:
        target = autoscaler["spec"]["scaleTargetRef"]
        checker.check(
            target["kind"] == "Deployment" and target["name"] == name,
            f"the HPA scales {target['kind']}/{target['name']}, not Deployment/{name}",
        )
        checker.check(
            "replicas" not in deployment["spec"],
            "the Deployment sets replicas although an HPA scales it",
        )
    selector = deployment["spec"]["selector"]["matchLabels"]
    for budget in only(objects, "PodDisruptionBudget"):
        checker.check(
            budget["spec"]["selector"]["matchLabels"] == selector,
            "the PDB selects other pods than the Deployment",
        )

    if "KAI_DATABASE_URL" not in env:
        checker.check(
            not autoscalers and deployment["spec"].get("replicas", 1) <= 1,
            "SQLite is configured with more than one replica",
        )
        checker.check(
            deployment["spec"].get("strategy", {}).get("type") == "Recreate",
            "SQLite is configured with a rolling update, so two pods would share the file",
        )
    return checker.failures


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.split("\n\n")[1].strip(), file=sys.stderr)
        return 2
    path = Path(argv[0])
    objects = [item for item in yaml.safe_load_all(path.read_text()) if item]
    failures = check_release(objects)
    for failure in failures:
        print(f"FAILED {path}: {failure}")
    if not failures:
        kinds = ", ".join(sorted({item["kind"] for item in objects}))
        print(f"{path}: chart invariants hold ({kinds})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
