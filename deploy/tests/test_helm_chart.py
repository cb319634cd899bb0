"""The Helm chart: lint, render for every ci/ values file, validate every manifest offline,
and hold every workload to the platform's policies."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import yaml
from deploy_support import CHART, CI_VALUES, KUBE_VERSION, REPO, helm_template, missing_tool
from devstack.platform import SERVICES as PLATFORM_SERVICES

try:
    import kubernetes_validate
except ImportError:  # pragma: no cover - reported by the fixture below
    kubernetes_validate = None


@pytest.fixture(scope="module")
def k8s_schemas():
    if kubernetes_validate is None:
        missing_tool("kubernetes-validate")
    return kubernetes_validate

# Custom resources have no schema in kubernetes-validate: checked structurally below.
CRDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("kafka.strimzi.io/v1beta2", "KafkaTopic"),
}
WORKLOAD_KINDS = {"Deployment", "Job"}
PINNED_TAG = re.compile(r"^[^:@]+(:[0-9]+\.[0-9]+\.[0-9]+[\w.+-]*)(@sha256:[a-f0-9]{64})?$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")


def kinds(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def pod_spec(doc: dict) -> dict:
    return doc["spec"]["template"]["spec"]


def pod_labels(doc: dict) -> dict:
    return doc["spec"]["template"]["metadata"]["labels"]


def selects(selector: dict, labels: dict) -> bool:
    match = selector.get("matchLabels", {})
    return bool(match) and all(labels.get(k) == v for k, v in match.items())


# ---------------------------------------------------------------- lint and render

@pytest.mark.parametrize("values", [None, *CI_VALUES], ids=lambda v: v.stem if v else "default")
def test_helm_lint_is_clean(helm, values):
    args = [helm, "lint", str(CHART), "--strict", "--kube-version", KUBE_VERSION]
    if values:
        args += ["-f", str(values)]
    result = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ci_values_cover_a_minimal_and_a_production_install():
    assert {v.stem for v in CI_VALUES} >= {"minimal-values", "production-values"}


def test_every_rendered_manifest_is_valid_for_kubernetes(rendered, values_name, k8s_schemas):
    errors = []
    for doc in rendered[values_name]:
        if (doc["apiVersion"], doc["kind"]) in CRDS:
            continue
        try:
            k8s_schemas.validate(doc, KUBE_VERSION, strict=True)
        except k8s_schemas.ValidationError as error:
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: {error.message}")
    assert not errors, "\n".join(errors)


def test_custom_resources_are_structurally_sound(rendered, values_name):
    """ServiceMonitor, PodMonitor, PrometheusRule and KafkaTopic: no bundled schema, so
    check what their operators require."""
    for doc in rendered[values_name]:
        key = (doc["apiVersion"], doc["kind"])
        if key not in CRDS:
            continue
        assert DNS_LABEL.match(doc["metadata"]["name"]), doc["metadata"]["name"]
        spec = doc["spec"]
        if doc["kind"] == "ServiceMonitor":
            assert spec["selector"]["matchLabels"]
            assert all(e["port"] and e["path"] == "/metrics" for e in spec["endpoints"])
        elif doc["kind"] == "PodMonitor":
            assert spec["selector"]
            assert all(e["port"] for e in spec["podMetricsEndpoints"])
        elif doc["kind"] == "PrometheusRule":
            assert spec["groups"]
            for group in spec["groups"]:
                assert group["name"] and group["rules"]
                for rule in group["rules"]:
                    assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}
                    assert rule["alert"] and rule["expr"].strip()
                    assert rule["labels"]["severity"] in {"critical", "warning"}
                    assert "for" not in rule or DURATION.match(rule["for"])
                    assert rule["expr"].count("(") == rule["expr"].count(")")
        elif doc["kind"] == "KafkaTopic":
            assert doc["metadata"]["labels"]["strimzi.io/cluster"]
            assert isinstance(spec["partitions"], int) and spec["partitions"] >= 1
            assert isinstance(spec["replicas"], int) and spec["replicas"] >= 1
            assert all(isinstance(v, str) for v in spec.get("config", {}).values())


# ---------------------------------------------------------------- policies

def test_every_image_is_pinned(rendered, values_name):
    for doc in kinds(rendered[values_name], "Deployment") + kinds(rendered[values_name], "Job"):
        for container in pod_spec(doc)["containers"]:
            image = container["image"]
            assert PINNED_TAG.match(image) and ":latest" not in image, image


def test_every_container_has_resources_and_probes(rendered, values_name):
    for doc in rendered[values_name]:
        if doc["kind"] not in WORKLOAD_KINDS:
            continue
        for container in pod_spec(doc)["containers"]:
            resources = container["resources"]
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources[bound]), (doc["metadata"]["name"], bound)
            if doc["kind"] == "Deployment":  # a migration Job runs to completion: no probes
                for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                    assert probe in container, (doc["metadata"]["name"], probe)


def test_every_pod_runs_locked_down(rendered, values_name):
    for doc in rendered[values_name]:
        if doc["kind"] not in WORKLOAD_KINDS:
            continue
        spec = pod_spec(doc)
        name = doc["metadata"]["name"]
        assert spec["automountServiceAccountToken"] is False, name
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] != 0, name
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        for container in spec["containers"]:
            sc = container["securityContext"]
            assert sc["runAsNonRoot"] is True, name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc.get("privileged", False) is False, name
            assert sc["capabilities"]["drop"] == ["ALL"] and not sc["capabilities"].get("add"), name
            assert sc["seccompProfile"]["type"] == "RuntimeDefault", name


def test_service_accounts_mount_no_token(rendered, values_name):
    accounts = kinds(rendered[values_name], "ServiceAccount")
    assert accounts
    assert all(sa["automountServiceAccountToken"] is False for sa in accounts)


def test_every_workload_has_its_own_network_policy(rendered, values_name):
    docs = rendered[values_name]
    policies = kinds(docs, "NetworkPolicy")
    for doc in docs:
        if doc["kind"] not in WORKLOAD_KINDS:
            continue
        mine = [p for p in policies if selects(p["spec"]["podSelector"], pod_labels(doc))]
        assert mine, f"no NetworkPolicy selects {doc['kind']}/{doc['metadata']['name']}"
        for policy in mine:
            assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}


def test_only_the_gateway_takes_traffic_from_outside(rendered):
    docs = rendered["production-values"]
    policies = {p["metadata"]["name"]: p["spec"] for p in kinds(docs, "NetworkPolicy")}
    gateway_pod = {"app.kubernetes.io/component": "gateway", "opengpsoc.org/process": "api"}
    for name, spec in policies.items():
        sources = [peer for rule in spec.get("ingress", []) for peer in rule["from"]]
        from_controller = [p for p in sources if p.get("namespaceSelector", {}).get("matchLabels", {})
                           .get("kubernetes.io/metadata.name") == "ingress-nginx"]
        if name == "gpsoc-gateway-api":
            assert from_controller
        else:
            assert not from_controller, name
            pods = [p["podSelector"]["matchLabels"] for p in sources if "podSelector" in p]
            assert all(gateway_pod.items() <= pod.items() for pod in pods), name
        if name.endswith(("-relay", "-consumer")):
            # Workers serve nothing but (later) metrics to the monitoring namespace.
            assert all("podSelector" not in p for p in sources), name


def test_service_egress_is_database_kafka_dns_otlp_and_the_token_issuer(rendered):
    docs = rendered["production-values"]
    policy = next(p for p in kinds(docs, "NetworkPolicy")
                  if p["metadata"]["name"] == "gpsoc-patient-index-relay")
    ports = sorted(port["port"] for rule in policy["spec"]["egress"] for port in rule["ports"])
    assert ports == sorted([53, 53, 4317, 4318, 5432, 9092, 9093])  # no JWKS: relays verify no tokens


def test_nothing_secret_is_in_values_or_manifests(rendered, values_name):
    docs = rendered[values_name]
    assert not kinds(docs, "Secret"), "the chart must reference existing Secrets, not make them"
    secret_names = re.compile(r"(PASSWORD|SECRET|TOKEN|_URL$|KEY$)")
    for doc in docs:
        if doc["kind"] not in WORKLOAD_KINDS:
            continue
        for container in pod_spec(doc)["containers"]:
            for env in container.get("env", []):
                if env["name"] in {"DATABASE_URL", "MIGRATION_DATABASE_URL", "JWT_JWKS_URL"}:
                    assert "secretKeyRef" in env["valueFrom"], env
                else:
                    assert "value" not in env or not secret_names.search(env["name"]), env
    for cm in kinds(docs, "ConfigMap"):
        for key, value in cm["data"].items():
            assert "@" not in value and not re.search(r"password|secret", key, re.I), (key, value)


def test_runtime_pods_never_get_the_owner_database_url(rendered):
    for doc in kinds(rendered["production-values"], "Deployment"):
        names = {e["name"] for c in pod_spec(doc)["containers"] for e in c.get("env", [])}
        assert "MIGRATION_DATABASE_URL" not in names, doc["metadata"]["name"]


def test_every_deployment_has_a_disruption_budget_and_autoscaling_owns_replicas(rendered, values_name):
    docs = rendered[values_name]
    budgets = kinds(docs, "PodDisruptionBudget")
    scaled = {h["spec"]["scaleTargetRef"]["name"] for h in kinds(docs, "HorizontalPodAutoscaler")}
    for doc in kinds(docs, "Deployment"):
        labels = pod_labels(doc)
        assert any(selects(b["spec"]["selector"], labels) for b in budgets), doc["metadata"]["name"]
        assert ("replicas" in doc["spec"]) != (doc["metadata"]["name"] in scaled), doc["metadata"]["name"]
    names = {d["metadata"]["name"] for d in kinds(docs, "Deployment")}
    assert scaled <= names


def test_production_spreads_pods_over_zones(rendered):
    for doc in kinds(rendered["production-values"], "Deployment"):
        constraints = pod_spec(doc)["topologySpreadConstraints"]
        assert any(c["topologyKey"] == "topology.kubernetes.io/zone" for c in constraints)


def test_services_select_their_api_pods(rendered, values_name):
    docs = rendered[values_name]
    deployments = kinds(docs, "Deployment")
    for service in kinds(docs, "Service"):
        targets = [d for d in deployments
                   if selects({"matchLabels": service["spec"]["selector"]}, pod_labels(d))]
        assert [d["metadata"]["name"] for d in targets] == [service["metadata"]["name"]]


def test_migrations_are_hook_jobs_that_run_before_install_and_upgrade(rendered):
    docs = rendered["production-values"]
    jobs = kinds(docs, "Job")
    assert {j["metadata"]["name"] for j in jobs} == {
        f"gpsoc-{s.name}-migrate" for s in PLATFORM_SERVICES
    }
    for job in jobs:
        assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
        assert pod_spec(job)["containers"][0]["args"] == ["migrate"]
        env = {e["name"] for e in pod_spec(job)["containers"][0]["env"]}
        assert "MIGRATION_DATABASE_URL" in env and "DATABASE_URL" not in env
        # What the hook pod needs must exist before the release's own objects do.
        hooks = {(d["kind"], d["metadata"]["name"]) for d in docs
                 if "helm.sh/hook" in d["metadata"].get("annotations", {})}
        spec = pod_spec(job)
        assert ("ServiceAccount", spec["serviceAccountName"]) in hooks
        assert ("ConfigMap", spec["containers"][0]["envFrom"][0]["configMapRef"]["name"]) in hooks
        assert ("NetworkPolicy", job["metadata"]["name"]) in hooks


def test_the_gateway_ingress_is_tls_only(rendered):
    (ingress,) = kinds(rendered["production-values"], "Ingress")
    assert ingress["spec"]["tls"][0]["secretName"]
    assert ingress["spec"]["tls"][0]["hosts"] == [r["host"] for r in ingress["spec"]["rules"]]
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == "gpsoc-gateway-api"


def test_the_gateway_knows_where_every_service_is(rendered):
    (config,) = [c for c in kinds(rendered["production-values"], "ConfigMap")
                 if c["metadata"]["name"] == "gpsoc-gateway"]
    for service in ("PATIENT_INDEX", "APPOINTMENTS", "PRESCRIBING", "CLINICAL_NOTES"):
        assert config["data"][f"{service}_URL"].startswith("http://gpsoc-")


def test_each_process_type_runs_its_own_command(rendered):
    for doc in kinds(rendered["production-values"], "Deployment"):
        process = pod_labels(doc)["opengpsoc.org/process"]
        assert pod_spec(doc)["containers"][0]["args"] == [process]


# ---------------------------------------------------------------- one values entry per service

def test_adding_a_service_is_one_values_entry(helm):
    docs = helm_template(
        helm, "--set", "components.referrals.module=referrals",
        "--set", "components.referrals.image.repository=referrals",
        "--set-json", 'components.referrals.processes={"api":{},"consumer":{}}',
        "--set", "metrics.prometheusRule.enabled=true",
    )
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    for expected in [("Deployment", "gpsoc-referrals-api"), ("Deployment", "gpsoc-referrals-consumer"),
                     ("Service", "gpsoc-referrals-api"), ("ServiceAccount", "gpsoc-referrals"),
                     ("NetworkPolicy", "gpsoc-referrals-api"), ("NetworkPolicy", "gpsoc-referrals-consumer"),
                     ("PodDisruptionBudget", "gpsoc-referrals-consumer"), ("Job", "gpsoc-referrals-migrate"),
                     ("ConfigMap", "gpsoc-referrals")]:
        assert expected in names, expected
    assert ("Deployment", "gpsoc-referrals-relay") not in names
    gateway = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "gpsoc-gateway")
    assert gateway["data"]["REFERRALS_URL"] == "http://gpsoc-referrals-api.opengpsoc.svc:80"
    rules = next(d for d in docs if d["kind"] == "PrometheusRule")
    group = next(g for g in rules["spec"]["groups"] if g["name"] == "opengpsoc.referrals")
    assert any("referrals_consumer_lag_events" in r["expr"] for r in group["rules"])


def test_templates_are_shared_not_per_service():
    for template in (CHART / "templates").iterdir():
        for service in (s.name for s in PLATFORM_SERVICES):
            assert service not in template.name and service not in template.read_text(), template


@pytest.mark.parametrize("bad", [
    ["--set", "default.image.tag=latest"],
    ["--set", "components.gateway.env.DATABASE_URL=postgresql://x"],
    ["--set", "components.gateway.processes.worker.replicas=1"],
    ["--set", "default.securityContext.readOnlyRootFilesystem=false"],
])
def test_values_schema_rejects_unsafe_or_mistyped_values(helm, bad):
    result = subprocess.run([helm, "template", "x", str(CHART), *bad],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "schema" in result.stderr.lower() + "values don't meet", bad


# ---------------------------------------------------------------- one truth for topics and rules

def test_strimzi_topics_are_the_platforms_topics(rendered):
    from devstack.platform import platform_topics

    topics = {t["spec"]["topicName"]: t["spec"]["partitions"]
              for t in kinds(rendered["production-values"], "KafkaTopic")}
    assert topics == platform_topics()


def test_alert_rules_cover_errors_latency_lag_outbox_and_dead_letters(rendered):
    (rule,) = kinds(rendered["production-values"], "PrometheusRule")
    exprs = {r["alert"]: r["expr"] for g in rule["spec"]["groups"] if g["name"] == "opengpsoc.patient-index"
             for r in g["rules"]}
    assert "patient_index_http_request_duration_seconds_count" in exprs["OpenGPSoCHighErrorRate"]
    assert "patient_index_http_request_duration_seconds_bucket" in exprs["OpenGPSoCSlowRequests"]
    assert "patient_index_consumer_lag_events" in exprs["OpenGPSoCConsumerLag"]
    assert "patient_index_outbox_oldest_age_seconds" in exprs["OpenGPSoCOutboxStuck"]
    assert "patient_index_dead_letter_events_total" in exprs["OpenGPSoCDeadLetters"]
    gateway = next(g for g in rule["spec"]["groups"] if g["name"] == "opengpsoc.gateway")
    assert {r["alert"] for r in gateway["rules"]} == {"OpenGPSoCHighErrorRate", "OpenGPSoCSlowRequests"}


def test_compose_prometheus_alerts_are_the_charts(helm):
    import importlib.util

    spec = importlib.util.spec_from_file_location("alerts_from_chart",
                                                  REPO / "deploy" / "tools" / "alerts-from-chart.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    committed = (REPO / "deploy" / "prometheus" / "alerts.yml").read_text()
    assert committed == module.render(helm), (
        "deploy/prometheus/alerts.yml is stale: run .venv/bin/python deploy/tools/alerts-from-chart.py"
    )


def test_values_schema_is_valid_json_schema():
    import jsonschema

    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.validate(yaml.safe_load((CHART / "values.yaml").read_text()), schema)
