"""cluster/: every YAML parses, has what its kind needs, names one image, runs known jobs, holds no credentials."""
from __future__ import annotations

import datetime as dt
import re
import shlex
import tomllib
from pathlib import Path

import pytest
import yaml
from croniter import croniter

from fashiongen.config import load_config

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "cluster"
KUBERAY = CLUSTER / "kuberay"
JOB_SCRIPTS = {"train_recommender.py", "train_gan.py", "train_classifiers.py", "generate_catalog.py", "evaluate.py", "nightly.py"}
RAY_SERVICE_ACCOUNT = "fashiongen-ray"
SAMPLE_DATE = "2026-08-20"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


# --- cron schedules ----------------------------------------------------------------------------------------

def check_schedule(expr: str, where: str) -> None:
    """A Kubernetes CronJob / KubeRay RayCronJob schedule: the standard 5 fields (croniter also takes a seconds or
    year field, which Kubernetes rejects) and valid (strict: no impossible day-of-month for the months named)."""
    assert len(expr.split()) == 5, f"{where}: schedule {expr!r} must have 5 fields (minute hour dom month dow)"
    assert croniter.is_valid(expr, strict=True), f"{where}: schedule {expr!r} is not a valid cron expression"


def next_runs(expr: str, count: int, start: str = SAMPLE_DATE) -> list[dt.datetime]:
    """The schedule's next `count` run times after midnight UTC of `start`."""
    it = croniter(expr, dt.datetime.fromisoformat(start).replace(tzinfo=dt.timezone.utc))
    return [it.get_next(dt.datetime) for _ in range(count)]


# --- loading ----------------------------------------------------------------------------------------------------

def yaml_files() -> list[Path]:
    return sorted(CLUSTER.rglob("*.yaml"))


def docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def one(path: Path, kind: str) -> dict:
    found = [d for d in docs(path) if d.get("kind") == kind]
    assert len(found) == 1, f"{path.name}: expected one {kind}, found {len(found)}"
    return found[0]


def fallback_rayjob(run_date: str = SAMPLE_DATE) -> dict:
    """The RayJob the fallback CronJob creates for `run_date` (its template with the date filled in)."""
    template = one(KUBERAY / "cronjob-fallback.yaml", "ConfigMap")["data"]["rayjob.yaml"]
    return yaml.safe_load(template.replace("__RUN_DATE__", run_date))


def rayjob_specs() -> dict[str, dict]:
    """Every RayJob spec we ship: the RayJob files, the RayCronJob template and the fallback template."""
    specs = {p.name: one(p, "RayJob")["spec"] for p in sorted(KUBERAY.glob("rayjob-*.yaml"))}
    specs["raycronjob-nightly.yaml"] = one(KUBERAY / "raycronjob-nightly.yaml", "RayCronJob")["spec"]["jobTemplate"]
    specs["cronjob-fallback.yaml"] = fallback_rayjob()["spec"]
    return specs


def walk(node, key: str):
    """Every value stored under `key` anywhere in a nested structure."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key:
                yield v
            yield from walk(v, key)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item, key)


def dockerfile_image() -> str:
    """The image tag the Dockerfile says it builds (`docker build ... -t <image>`)."""
    match = re.search(r"docker build -f cluster/Dockerfile -t (\S+) \.", (CLUSTER / "Dockerfile").read_text())
    assert match, "cluster/Dockerfile must document its build command with -t <image>"
    return match.group(1)


def ray_pin() -> str:
    pins = [d for d in PYPROJECT["project"]["dependencies"] if d.startswith("ray[")]
    return pins[0].split("==")[1]


# --- every file ---------------------------------------------------------------------------------------------------

def test_expected_files_exist():
    names = {p.relative_to(CLUSTER).as_posix() for p in CLUSTER.rglob("*") if p.is_file()}
    assert {"Dockerfile", "README.md", "aws.yaml", "kuberay/raycluster.yaml", "kuberay/rayjob-train-recommender.yaml",
            "kuberay/rayjob-train-gan.yaml", "kuberay/rayjob-generate.yaml", "kuberay/raycronjob-nightly.yaml",
            "kuberay/cronjob-fallback.yaml", "kuberay/serviceaccount.yaml"} <= names


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: p.name)
def test_yaml_parses_and_kubernetes_docs_are_complete(path):
    documents = docs(path)
    assert documents
    if path.parent == KUBERAY:
        for d in documents:
            assert {"apiVersion", "kind", "metadata"} <= d.keys(), path.name
            assert d["metadata"].get("name") or d["metadata"].get("generateName")
            if d["kind"] != "Namespace":
                assert d["metadata"].get("namespace") == "fashiongen", f"{path.name}: {d['kind']} namespace"


def test_no_credentials_anywhere():
    secret_like = re.compile(r"(KEY|SECRET|TOKEN|PASSWORD)", re.I)
    for path in sorted(p for p in CLUSTER.rglob("*") if p.is_file()):
        text = path.read_text()
        assert not re.search(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b", text), f"{path}: an AWS access key id"
        assert not re.search(r"aws_secret_access_key\s*[:=]", text, re.I), f"{path}: an AWS secret"
        if path.suffix != ".yaml":
            continue
        structures = docs(path) + [fallback_rayjob()] * (path.name == "cronjob-fallback.yaml")
        for env_list in walk(structures, "env"):
            for env in env_list:
                if secret_like.search(env["name"]):
                    assert "value" not in env and "secretKeyRef" in env.get("valueFrom", {}), f"{path}: {env['name']}"


def test_every_cron_schedule_is_valid():
    schedules = [(p.name, expr) for p in yaml_files() for expr in walk(docs(p), "schedule")]
    assert {name for name, _ in schedules} >= {"raycronjob-nightly.yaml", "cronjob-fallback.yaml"}
    for name, expr in schedules:
        check_schedule(expr, name)


def test_one_image_everywhere_matching_the_dockerfile():
    image = dockerfile_image()
    name, tag = image.rsplit(":", 1)
    assert name.endswith("/fashiongen") and tag == PYPROJECT["project"]["version"]
    seen = {"aws.yaml": [yaml.safe_load((CLUSTER / "aws.yaml").read_text())["docker"]["image"]]}
    for path in sorted(KUBERAY.glob("*.yaml")):
        structures = docs(path)
        if path.name == "cronjob-fallback.yaml":  # its own pod only runs kubectl; the RayJob it creates is ours
            structures = [fallback_rayjob()]
        seen[path.name] = list(walk(structures, "image"))
    for file, images in seen.items():
        assert set(images) <= {image}, f"{file} uses {set(images) - {image}}"
    assert all(seen[f] for f in ("aws.yaml", "raycluster.yaml", "raycronjob-nightly.yaml", "cronjob-fallback.yaml"))


def test_dockerfile_matches_the_project_pins():
    text = (CLUSTER / "Dockerfile").read_text()
    base = re.search(r"^ARG RAY_IMAGE=rayproject/ray:(\S+)$", text, re.M)
    assert base and re.search(r"^FROM \$\{RAY_IMAGE\}$", text, re.M)
    ray_version, python, cuda = base.group(1).split("-")
    assert ray_version == ray_pin() and python == "py311" and re.fullmatch(r"cu12\d*", cuda)
    assert "UNVERIFIED" in text
    pins = {d.split("==")[0]: d.split("==")[1] for d in PYPROJECT["project"]["dependencies"] if "==" in d}
    assert f"torch=={pins['torch']}" in text and f"torchvision=={pins['torchvision']}" in text
    assert re.search(r'^RUN pip install --no-cache-dir "\.\[glue\]" ', text, re.M)  # the Glue catalog's client too
    workdirs = re.findall(r"^WORKDIR (\S+)$", text, re.M)
    assert workdirs[-1] == "/home/ray/app"
    for folder in ("jobs", "configs"):
        assert re.search(rf"^COPY .*\b{folder} \./{folder}$", text, re.M)


# --- Ray clusters ---------------------------------------------------------------------------------------------

def check_ray_cluster_spec(spec: dict, where: str) -> None:
    assert spec["rayVersion"] == ray_pin(), where
    assert spec["enableInTreeAutoscaling"] is True, f"{where}: GPU workers must scale from 0"
    head = spec["headGroupSpec"]
    env = {e["name"]: e.get("value") for c in head["template"]["spec"]["containers"] for e in c.get("env", [])}
    assert env.get("PYICEBERG_CATALOG__FASHIONGEN__TYPE") == "glue", f"{where}: the head commits to the table's catalog"
    assert head["rayStartParams"]["num-cpus"] == "0", f"{where}: the head must not run tasks"
    pod_specs = [head["template"]["spec"]] + [g["template"]["spec"] for g in spec["workerGroupSpecs"]]
    assert all(p["serviceAccountName"] == RAY_SERVICE_ACCOUNT for p in pod_specs), f"{where}: IRSA service account"
    gpu_groups = [g for g in spec["workerGroupSpecs"]
                  if any("nvidia.com/gpu" in c["resources"]["limits"] for c in g["template"]["spec"]["containers"])]
    assert gpu_groups, f"{where}: no GPU worker group"
    for group in spec["workerGroupSpecs"]:
        assert group["groupName"] and group["minReplicas"] == 0 and group["maxReplicas"] >= 1
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
    for group in gpu_groups:
        container = group["template"]["spec"]["containers"][0]
        assert int(container["resources"]["limits"]["nvidia.com/gpu"]) >= 1
        assert container["resources"]["requests"]["nvidia.com/gpu"] == container["resources"]["limits"]["nvidia.com/gpu"]
        assert any(t["key"] == "nvidia.com/gpu" for t in group["template"]["spec"]["tolerations"]), where


def test_raycluster():
    cluster = one(KUBERAY / "raycluster.yaml", "RayCluster")
    assert cluster["apiVersion"] == "ray.io/v1"
    check_ray_cluster_spec(cluster["spec"], "raycluster.yaml")


def test_aws_cluster_launcher():
    cfg = yaml.safe_load((CLUSTER / "aws.yaml").read_text())
    assert {"cluster_name", "max_workers", "provider", "auth", "available_node_types", "head_node_type", "docker",
            "head_start_ray_commands", "worker_start_ray_commands"} <= cfg.keys()
    assert cfg["provider"]["type"] == "aws" and cfg["provider"]["region"]
    types = cfg["available_node_types"]
    assert types[cfg["head_node_type"]]["resources"] == {"CPU": 0}
    gpu = [t for name, t in types.items() if t["resources"].get("GPU", 0) >= 1]
    assert gpu and all(t["min_workers"] == 0 and t["max_workers"] >= 1 for t in gpu)
    assert sum(t["max_workers"] for name, t in types.items() if name != cfg["head_node_type"]) <= cfg["max_workers"]
    for t in types.values():
        assert "Arn" in t["node_config"]["IamInstanceProfile"], "nodes reach S3 through an instance profile"


# --- jobs -----------------------------------------------------------------------------------------------------

def entrypoint_tokens(entrypoint: str) -> list[str]:
    tokens = shlex.split(entrypoint)
    assert tokens[0] == "python" and tokens[2] == "--config", entrypoint
    return tokens


def test_entrypoints_name_agreed_jobs_with_valid_config():
    for file, spec in rayjob_specs().items():
        tokens = entrypoint_tokens(spec["entrypoint"])
        script, config_file, overrides = tokens[1], tokens[3], tokens[4:]
        assert script.startswith("jobs/") and script[len("jobs/"):] in JOB_SCRIPTS, f"{file}: {script}"
        assert (REPO / config_file).is_file(), f"{file}: config {config_file} is not in the repository"
        cfg = load_config(REPO / config_file, overrides)  # every override names a real config key
        assert cfg.lake_uri.startswith("s3://"), f"{file}: cluster jobs must write to the S3 lake"
        assert "force" not in spec["entrypoint"], f"{file}: scheduled and stock jobs never force a recompute"


def test_entrypoints_exist():
    for file, spec in rayjob_specs().items():
        script = entrypoint_tokens(spec["entrypoint"])[1]
        assert (REPO / script).is_file(), f"{file} runs {script}, which is not in jobs/ yet"


def test_rayjobs():
    cluster_name = one(KUBERAY / "raycluster.yaml", "RayCluster")["metadata"]["name"]
    dockerfile_workdir = re.findall(r"^WORKDIR (\S+)$", (CLUSTER / "Dockerfile").read_text(), re.M)[-1]
    for file, spec in rayjob_specs().items():
        assert ("rayClusterSpec" in spec) != ("clusterSelector" in spec), f"{file}: one cluster source"
        if "clusterSelector" in spec:
            assert spec["clusterSelector"] == {"ray.io/cluster": cluster_name}, file
        else:
            check_ray_cluster_spec(spec["rayClusterSpec"], file)
            assert spec["shutdownAfterJobFinishes"] is True and spec["ttlSecondsAfterFinished"] > 0, file
        assert spec.get("submissionMode", "K8sJobMode") == "K8sJobMode", f"{file}: working_dir upload needs K8sJobMode"
        runtime_env = yaml.safe_load(spec["runtimeEnvYAML"])
        assert runtime_env["working_dir"] == dockerfile_workdir, f"{file}: working_dir must be the image's app folder"
        assert spec["activeDeadlineSeconds"] > 0
    stock = {p.name for p in KUBERAY.glob("rayjob-*.yaml")}
    assert stock == {"rayjob-train-recommender.yaml", "rayjob-train-gan.yaml", "rayjob-generate.yaml"}


def test_raycronjob_nightly():
    path = KUBERAY / "raycronjob-nightly.yaml"
    text = path.read_text()
    cron = one(path, "RayCronJob")
    assert cron["apiVersion"] == "ray.io/v1"
    check_schedule(cron["spec"]["schedule"], path.name)
    runs = next_runs(cron["spec"]["schedule"], 8)
    gaps = {later - earlier for earlier, later in zip(runs, runs[1:])}
    assert min(gaps) >= dt.timedelta(days=1), f"at most one run per day, got runs at {runs[:3]}"
    job = cron["spec"]["jobTemplate"]
    assert "rayClusterSpec" in job and job["shutdownAfterJobFinishes"] is True and job["ttlSecondsAfterFinished"] > 0
    assert 0 < job["activeDeadlineSeconds"] < 24 * 3600, "a run must end before the next tick (no concurrencyPolicy)"
    assert entrypoint_tokens(job["entrypoint"])[1] == "jobs/nightly.py"
    assert "feature gate `RayCronJob`" in text and "v1.6.0" in text
    assert "timeZone" in text and "v1.7.0" in text
    assert "RayCronJob" in (CLUSTER / "README.md").read_text()


def test_fallback_cronjob():
    path = KUBERAY / "cronjob-fallback.yaml"
    by_kind = {d["kind"]: d for d in docs(path)}
    assert set(by_kind) == {"ServiceAccount", "Role", "RoleBinding", "ConfigMap", "CronJob"}
    cron = by_kind["CronJob"]
    assert cron["apiVersion"] == "batch/v1" and cron["spec"]["concurrencyPolicy"] == "Forbid"
    check_schedule(cron["spec"]["schedule"], path.name)
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    account = by_kind["ServiceAccount"]["metadata"]["name"]
    assert pod["serviceAccountName"] == account and pod["restartPolicy"] == "Never"
    binding = by_kind["RoleBinding"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": "fashiongen"}]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": by_kind["Role"]["metadata"]["name"]}
    [rule] = by_kind["Role"]["rules"]
    assert rule["apiGroups"] == ["ray.io"] and rule["resources"] == ["rayjobs"] and {"create", "get"} <= set(rule["verbs"])
    assert pod["volumes"][0]["configMap"]["name"] == by_kind["ConfigMap"]["metadata"]["name"]

    script = pod["containers"][0]["args"][0]
    assert 'RUN_DATE="$(date -u +%Y-%m-%d)"' in script and 'NAME="fashiongen-nightly-${RUN_DATE}"' in script
    assert "kubectl create -f -" in script and "jobDeploymentStatus" in script and "Complete/SUCCEEDED) exit 0" in script

    # the date is the idempotency key: RayJob name, Ray submission id and the job's run_date
    job = fallback_rayjob(SAMPLE_DATE)
    name = job["metadata"]["name"]
    assert name == f"fashiongen-nightly-{SAMPLE_DATE}" and re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name)
    assert len(name) <= 63
    assert job["spec"]["jobId"] == f"nightly-{SAMPLE_DATE}"
    assert f"run_date={SAMPLE_DATE}" in entrypoint_tokens(job["spec"]["entrypoint"])
    assert load_config(REPO / "configs/cluster.yaml",
                       entrypoint_tokens(job["spec"]["entrypoint"])[4:]).run_date == SAMPLE_DATE
    assert job["spec"]["activeDeadlineSeconds"] < cron["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"]
