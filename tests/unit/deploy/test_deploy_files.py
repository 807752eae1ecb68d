"""Deployment files stay consistent with the code: compose, Kubernetes, Prometheus, Grafana.

No Docker engine or cluster is needed: these parse the files and cross-check names, ports and
metric references against ``dispatcher.config.Settings`` and ``DispatcherMetrics``.
"""

from __future__ import annotations

import json
import re
import tomllib
from importlib import import_module
from pathlib import Path
from typing import Any

import pytest
import yaml

from dispatcher.cli.traffic import traffic_options
from dispatcher.config import ENV_PREFIX, Settings
from dispatcher.observability.metrics import DispatcherMetrics

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
WORKERS = ("worker-1", "worker-2")
SETTINGS_ENV = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
METRIC_NAME = re.compile(r"\b(dispatcher_[a-z0-9_]+)\b")
DEFAULT_WEB_PORT = Settings().web_port


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def compose() -> dict[str, Any]:
    data: dict[str, Any] = load(ROOT / "docker-compose.yml")
    return data


def k8s_docs() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


def k8s(kind: str) -> dict[str, Any]:
    found = [d for d in k8s_docs() if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def exported() -> set[str]:
    return DispatcherMetrics().exported_names()


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DEPLOY / "grafana/dashboards/dispatcher.json").read_text())
    return data


# --- every file parses ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        ROOT / "docker-compose.yml",
        DEPLOY / "prometheus/prometheus.yml",
        DEPLOY / "prometheus/alerts.yml",
        DEPLOY / "prometheus/alerts_test.yml",
        DEPLOY / "grafana/provisioning/datasources/prometheus.yml",
        DEPLOY / "grafana/provisioning/dashboards/dashboards.yml",
        *sorted((DEPLOY / "k8s").glob("*.yaml")),
    ],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_yaml_file_parses_to_a_mapping(path: Path) -> None:
    """Each deployment YAML file parses, and every document in it is a mapping."""
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert docs
    assert all(isinstance(d, dict) for d in docs)


# --- docker-compose --------------------------------------------------------------------------


def test_compose_has_the_required_services() -> None:
    """Compose runs Kafka, PostgreSQL, two workers, demo traffic, Prometheus and Grafana."""
    services = set(compose()["services"])
    assert {"kafka", "postgres", "prometheus", "grafana", "demo", *WORKERS} <= services


def test_kafka_runs_in_kraft_mode_without_zookeeper() -> None:
    """The broker is apache/kafka in KRaft mode (broker+controller) and nothing is ZooKeeper."""
    services = compose()["services"]
    kafka = services["kafka"]
    env = kafka["environment"]
    assert kafka["image"].startswith("apache/kafka:")
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{env['KAFKA_NODE_ID']}@")
    assert "CONTROLLER" in env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert "zookeeper" not in json.dumps(compose()).lower()  # comments aside
    assert not any("zookeeper" in str(s.get("image", "")) for s in services.values())


def test_postgres_is_version_16() -> None:
    """The database service is PostgreSQL 16."""
    assert compose()["services"]["postgres"]["image"].startswith("postgres:16")


@pytest.mark.parametrize("name", WORKERS)
def test_worker_has_a_healthz_healthcheck_and_known_settings(name: str) -> None:
    """Each worker has a /healthz healthcheck and only DISPATCHER_* names that Settings knows."""
    worker = compose()["services"][name]
    assert worker["command"] == ["worker"]
    test = " ".join(worker["healthcheck"]["test"])
    port = int(worker["environment"].get("DISPATCHER_WEB_PORT", DEFAULT_WEB_PORT))
    assert f":{port}/healthz" in test
    env = worker["environment"]
    assert {"DISPATCHER_KAFKA_BOOTSTRAP", "DISPATCHER_DATABASE_URL"} <= set(env)
    assert env["DISPATCHER_WEB_HOST"] == "0.0.0.0"
    assert set(env) <= SETTINGS_ENV, set(env) - SETTINGS_ENV
    Settings.from_env({k: str(v) for k, v in env.items()})  # values validate too


def test_prometheus_targets_match_the_compose_workers() -> None:
    """prometheus.yml scrapes exactly the compose workers, on the port each one listens on."""
    prom = load(DEPLOY / "prometheus/prometheus.yml")
    job = next(j for j in prom["scrape_configs"] if j["job_name"] == "dispatcher")
    targets = {t for sc in job["static_configs"] for t in sc["targets"]}
    services = compose()["services"]
    expected = {
        f"{name}:{services[name]['environment'].get('DISPATCHER_WEB_PORT', DEFAULT_WEB_PORT)}"
        for name in WORKERS
    }
    assert targets == expected
    assert job.get("metrics_path", "/metrics") == "/metrics"


def test_compose_mounts_the_monitoring_files_that_exist() -> None:
    """Prometheus gets deploy/prometheus, Grafana the provisioning and dashboards folders."""
    services = compose()["services"]
    mounts = {
        svc: {
            v.split(":")[0]: v.split(":")[1] for v in services[svc]["volumes"] if v.startswith("./")
        }
        for svc in ("prometheus", "grafana")
    }
    assert mounts["prometheus"]["./deploy/prometheus"] == "/etc/prometheus"
    assert mounts["grafana"]["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    dashboards = mounts["grafana"]["./deploy/grafana/dashboards"]
    provider = load(DEPLOY / "grafana/provisioning/dashboards/dashboards.yml")["providers"][0]
    assert provider["options"]["path"] == dashboards
    for source in (*mounts["prometheus"], *mounts["grafana"]):
        assert (ROOT / source).is_dir(), source


def test_demo_service_runs_the_registered_traffic_script() -> None:
    """The demo runs `dispatcher-traffic`, which pyproject maps to an importable main()."""
    demo = compose()["services"]["demo"]
    assert demo["entrypoint"] == ["dispatcher-traffic"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, func = scripts["dispatcher-traffic"].split(":")
    assert callable(getattr(import_module(module), func))
    assert "DISPATCHER_KAFKA_BOOTSTRAP" in demo["environment"]


def test_traffic_options_read_rate_and_seed_and_refuse_a_zero_rate() -> None:
    """dispatcher-traffic reads its rate and seed from the environment and rejects rate 0."""
    assert traffic_options({}) == (5.0, 7)
    assert traffic_options({"DISPATCHER_TRAFFIC_RATE": "20", "DISPATCHER_TRAFFIC_SEED": "3"}) == (
        20.0,
        3,
    )
    with pytest.raises(ValueError, match="RATE"):
        traffic_options({"DISPATCHER_TRAFFIC_RATE": "0"})


def test_dockerfile_runs_the_worker_as_non_root_with_a_healthz_check() -> None:
    """The image is python:3.11-slim, runs as a non-root user, checks /healthz, runs `worker`."""
    text = (ROOT / "Dockerfile").read_text()
    froms = re.findall(r"^FROM\s+(\S+)", text, re.MULTILINE)
    assert froms
    assert all(f == "python:3.11-slim" for f in froms)
    users = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    assert users
    assert users[-1].split(":")[0] not in {"root", "0"}
    assert re.search(r"^HEALTHCHECK .*\n?.*/healthz", text, re.MULTILINE)
    assert 'ENTRYPOINT ["dispatcher"]' in text
    assert 'CMD ["worker"]' in text


# --- Kubernetes -----------------------------------------------------------------------------


def worker_container() -> dict[str, Any]:
    containers = k8s("Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


@pytest.mark.parametrize("probe", ["readinessProbe", "livenessProbe", "startupProbe"])
def test_k8s_probes_hit_healthz_on_the_container_port(probe: str) -> None:
    """Every probe is an HTTP GET of /healthz on the port the worker listens on."""
    container = worker_container()
    config = k8s("ConfigMap")["data"]
    web_port = int(config.get("DISPATCHER_WEB_PORT", DEFAULT_WEB_PORT))
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    get = container[probe]["httpGet"]
    assert get["path"] == "/healthz"
    port = ports[get["port"]] if isinstance(get["port"], str) else get["port"]
    assert port == web_port


def test_k8s_env_names_are_settings_and_the_dsn_comes_from_a_secret() -> None:
    """ConfigMap keys and container env are Settings fields; the DSN is a secret reference."""
    config = k8s("ConfigMap")
    assert set(config["data"]) <= SETTINGS_ENV, set(config["data"]) - SETTINGS_ENV
    assert "DISPATCHER_DATABASE_URL" not in config["data"]
    container = worker_container()
    env = {e["name"]: e for e in container["env"]}
    assert set(env) <= SETTINGS_ENV
    assert "secretKeyRef" in env["DISPATCHER_DATABASE_URL"]["valueFrom"]
    refs = [e["configMapRef"]["name"] for e in container["envFrom"]]
    assert refs == [config["metadata"]["name"]]
    Settings.from_env(dict(config["data"]))


def test_k8s_replicas_do_not_exceed_partitions() -> None:
    """The worker Deployment never runs more replicas than there are partitions to own."""
    replicas = k8s("Deployment")["spec"]["replicas"]
    partitions = int(k8s("ConfigMap")["data"]["DISPATCHER_PARTITIONS"])
    assert 1 <= replicas <= partitions
    assert "replicas <= partitions" in (DEPLOY / "k8s/deployment.yaml").read_text()


def test_k8s_service_and_pdb_select_the_worker_pods() -> None:
    """The Service and the PodDisruptionBudget select the Deployment's pods by their labels."""
    deployment = k8s("Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    service = k8s("Service")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["ports"][0]["targetPort"] in {
        p["name"] for p in worker_container()["ports"]
    }
    pdb = k8s("PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_k8s_pod_runs_as_non_root() -> None:
    """The worker pod refuses to run as root and cannot escalate privileges."""
    pod = k8s("Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert worker_container()["securityContext"]["allowPrivilegeEscalation"] is False


# --- Grafana and Prometheus reference only metrics that exist ------------------------------


def dashboard_panels() -> list[dict[str, Any]]:
    return [p for p in dashboard()["panels"] if p.get("type") != "row"]


def test_every_dashboard_panel_queries_existing_dispatcher_metrics() -> None:
    """Each panel's PromQL names at least one DispatcherMetrics metric, and no unknown one."""
    names = exported()
    panels = dashboard_panels()
    assert panels
    for panel in panels:
        exprs = [t["expr"] for t in panel["targets"]]
        used = {m for e in exprs for m in METRIC_NAME.findall(e)}
        assert used, f"panel {panel['title']!r} shows no dispatcher metric"
        assert used <= names, f"panel {panel['title']!r} uses unknown {used - names}"


def test_dashboard_covers_every_metric_family() -> None:
    """Every metric family DispatcherMetrics defines appears on the dashboard."""
    text = " ".join(t["expr"] for p in dashboard_panels() for t in p["targets"])
    used = set(METRIC_NAME.findall(text))
    missing = {
        family
        for family in DispatcherMetrics().families()
        if not used & {family, f"{family}_total", f"{family}_bucket", f"{family}_count"}
    }
    assert missing == set()


def test_dashboard_uses_the_provisioned_datasource() -> None:
    """Panels refer to the datasource uid that provisioning creates."""
    ds = load(DEPLOY / "grafana/provisioning/datasources/prometheus.yml")["datasources"][0]
    uids = {p["datasource"]["uid"] for p in dashboard_panels()}
    assert uids == {ds["uid"]}
    assert ds["url"] == "http://prometheus:9090"


def test_alert_rules_reference_only_existing_metrics() -> None:
    """Every dispatcher_* name in alerts.yml is a metric DispatcherMetrics exports."""
    rules = load(DEPLOY / "prometheus/alerts.yml")
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    used = {m for e in exprs for m in METRIC_NAME.findall(e)}
    assert used
    assert used <= exported(), used - exported()
