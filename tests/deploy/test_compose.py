"""docker-compose.yml against the Compose specification schema, and its Prometheus config checked by promtool."""

from __future__ import annotations

import copy
import json
import subprocess

import jsonschema
import yaml

from tests.deploy.dockerfile import REPO, env_values, read_stages

COMPOSE = REPO / "docker-compose.yml"
PROMETHEUS = REPO / "deploy" / "prometheus" / "prometheus.yml"


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def schema_errors(doc: dict, schema_path) -> list[str]:
    schema = json.loads(schema_path.read_text())  # declares draft 2019-09 by an address jsonschema does not know
    validator = jsonschema.Draft201909Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]


def test_compose_file_is_valid(compose_schema):
    assert schema_errors(compose(), compose_schema) == []


def test_compose_schema_rejects_a_typo(compose_schema):
    doc = copy.deepcopy(compose())
    doc["services"]["gateway"]["enviroment"] = {}
    assert schema_errors(doc, compose_schema)


def test_compose_wires_gateway_and_prometheus():
    services = compose()["services"]
    assert services["gateway"]["build"] == "."
    gateway_env = {**env_values(read_stages()["runtime"]), **services["gateway"]["environment"]}
    assert int(gateway_env["LLM_GATEWAY_THREADS"]) == services["gateway"]["cpus"]
    mounts = [v.split(":") for v in services["prometheus"]["volumes"] if v.startswith("./")]
    assert mounts and all((REPO / source).is_file() for source, *_ in mounts)
    assert ["./deploy/prometheus/prometheus.yml", "/etc/prometheus/prometheus.yml", "ro"] in mounts
    [job] = yaml.safe_load(PROMETHEUS.read_text())["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == [f"gateway:{gateway_env['LLM_GATEWAY_PORT']}"]


def test_prometheus_config_passes_promtool(promtool):
    proc = subprocess.run(
        [str(promtool), "check", "config", str(PROMETHEUS)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "rules found" in proc.stdout, "the rule file must be found and checked too"


def test_promtool_rejects_a_broken_config(promtool, tmp_path):
    broken = tmp_path / "prometheus.yml"
    broken.write_text(PROMETHEUS.read_text().replace("scrape_interval", "scrape_intervall"))
    (tmp_path / "rules.yml").write_text((PROMETHEUS.parent / "rules.yml").read_text())
    proc = subprocess.run([str(promtool), "check", "config", str(broken)], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
