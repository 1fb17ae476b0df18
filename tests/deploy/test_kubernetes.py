"""deploy/kubernetes: strict schema validation offline (kubernetes-validate ships the schemas), and the pieces
agreeing with each other and with the image."""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest
import yaml

from tests.deploy.dockerfile import REPO, env_values, of_kind, read_stages

MANIFESTS = sorted((REPO / "deploy" / "kubernetes").glob("*.yaml"))
# The oldest release we claim (autoscaling/v2 and policy/v1 are GA there) and the newest the package knows.
VERSIONS = ["1.29.0", kubernetes_validate.latest_version()]


def documents() -> dict[str, dict]:
    docs = [doc for path in MANIFESTS for doc in yaml.safe_load_all(path.read_text()) if doc]
    return {doc["kind"]: doc for doc in docs}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_is_valid(path, version):
    for doc in yaml.safe_load_all(path.read_text()):
        kubernetes_validate.validate(doc, version, strict=True)


def test_strict_validation_rejects_a_typo():
    deployment = copy.deepcopy(documents()["Deployment"])
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)


def test_expected_objects():
    assert set(documents()) == {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"}


def test_objects_select_the_deployment_pods():
    docs = documents()
    deployment = docs["Deployment"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selectors = [
        deployment["spec"]["selector"]["matchLabels"],
        docs["Service"]["spec"]["selector"],
        docs["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"],
    ]
    assert all(selector.items() <= pod_labels.items() for selector in selectors)
    target = docs["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert docs["PodDisruptionBudget"]["spec"]["minAvailable"] < docs["HorizontalPodAutoscaler"]["spec"]["minReplicas"]


def test_container_matches_the_image():
    docs = documents()
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    runtime = read_stages()["runtime"]
    image_port = int(env_values(runtime)["LLM_GATEWAY_PORT"])
    [http] = [p for p in container["ports"] if p["name"] == "http"]
    assert http["containerPort"] == image_port
    assert docs["Service"]["spec"]["ports"][0]["targetPort"] == "http"
    assert container["readinessProbe"]["httpGet"] == {"path": "/v1/ready", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/v1/health", "port": "http"}
    [user] = of_kind(runtime, "USER")
    assert pod["securityContext"]["runAsUser"] == int(user.split(":")[0])


def test_threads_follow_the_cpu_limit():
    [container] = documents()["Deployment"]["spec"]["template"]["spec"]["containers"]
    threads = next(e for e in container["env"] if e["name"] == "LLM_GATEWAY_THREADS")
    ref = threads["valueFrom"]["resourceFieldRef"]
    assert (ref["containerName"], ref["resource"], ref["divisor"]) == (container["name"], "limits.cpu", "1")
    resources = container["resources"]
    assert resources["requests"]["cpu"] == resources["limits"]["cpu"], "a whole, guaranteed core count for ORT"
