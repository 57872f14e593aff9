"""The deployment files: compose files valid and consistent with the package, the Dockerfile
installing the project as these tests do, and the wheel installing in fresh environments."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from polyfit.models import Settings
from polyfit.worker.service.cli import main as worker_cli

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "tests" / "data" / "compose-spec.json"  # vendored; its $comment names the source
COMPOSE_FILES = [ROOT / "docker-compose.yml", *sorted((ROOT / "deploy").glob("*.yml"))]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
PACKAGES = ("models", "store", "worker", "client", "api")  # folders, installed as polyfit.*
VARIABLE = re.compile(r"\$(\$|\{|\w+)")


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def interpolate(text: str, env: dict[str, str]) -> str:
    """What Compose makes of ``text``, for the only forms these files use: ``$$`` (a dollar),
    ``$VAR``, ``${VAR}`` and ``${VAR:-default}`` (the default may hold these too); any other
    form is refused, so that a new one gets checked. A variable unset with no default raises
    KeyError: `docker compose up` would need it set. Where Docker Compose is installed,
    ``test_files_read_as_docker_compose_config_reads_them`` holds this to Compose's own."""
    out, i = [], 0
    while (match := VARIABLE.search(text, i)) is not None:
        out.append(text[i:match.start()])
        if match.group(1) != "{":  # $$ is a dollar; $VAR is ${VAR}
            out.append("$" if match.group(1) == "$" else required(match.group(1), env))
            i = match.end()
            continue
        depth, end = 1, match.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(text[end], 0)
            end += 1
        body = text[match.end():end - 1]
        form = re.fullmatch(r"(\w+)(?::-(.*))?", body, re.S)
        if form is None:
            raise ValueError(f"${{{body}}}: a form of interpolation these tests do not read")
        name, default = form.groups()
        value = env.get(name) or (interpolate(default, env) if default is not None else None)
        out.append(value if value is not None else required(name, env))
        i = end
    return "".join(out) + text[i:]


def required(name: str, env: dict[str, str]) -> str:
    if name not in env:
        raise KeyError(f"${name} has no default")
    return env[name]


def resolved(node: Any, env: dict[str, str] | None = None) -> Any:
    """A parsed compose file with every string interpolated."""
    if isinstance(node, dict):
        return {key: resolved(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [resolved(value, env) for value in node]
    return interpolate(node, env or {}) if isinstance(node, str) else node


def services(path: Path, env: dict[str, str] | None = None) -> dict[str, dict]:
    return resolved(load(path), env)["services"]


def our_services(path: Path, env: dict[str, str] | None = None) -> dict[str, dict]:
    """The services that run polyfit's own images."""
    return {name: service for name, service in services(path, env).items()
            if str(service.get("image", "")).startswith("polyfit:")}


def argv(service: dict) -> list[str]:
    return [*service.get("entrypoint", []), *service.get("command", [])]


def option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


# --- compose files ---------------------------------------------------------------------

COMPOSE = shutil.which("docker") and subprocess.run(
    ["docker", "compose", "version"], capture_output=True).returncode == 0


def plausible(name: str) -> str:
    """A value Compose accepts for ``name`` (it checks ports, addresses, counts)."""
    for ending, value in (("_PORT", "12345"), ("_ADDRESS", "127.0.0.2"), ("_REPLICAS", "3"),
                          ("_CONCURRENCY", "5"), ("_DEVICE", "1"), ("_MAXMEMORY", "512mb"),
                          ("_REDIS_URL", "redis://:pw@elsewhere:6379/1"),
                          ("INDEX_URL", "https://index.example/simple"),
                          ("_NETWORK", "host")):
        if name.endswith(ending):
            return value
    return f"set-{name.lower()}"


# every variable the files read, set: Compose and these tests must agree with and without
EVERY_VARIABLE = {name: plausible(name) for name in sorted(set(re.findall(
    r"\$\{(\w+)", "".join(path.read_text() for path in COMPOSE_FILES))))}


@pytest.mark.skipif(not COMPOSE, reason="needs Docker Compose (docker compose config)")
@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
@pytest.mark.parametrize("env", [{}, EVERY_VARIABLE], ids=["defaults", "every-variable-set"])
def test_files_read_as_docker_compose_config_reads_them(path: Path, env: dict[str, str]) -> None:
    """Each service's command, entrypoint, environment and healthcheck as these tests read
    them are what Compose itself makes of the file (`docker compose config`; an override
    file on top of docker-compose.yml)."""
    files = [path] if "image" in str(load(path)) else [ROOT / "docker-compose.yml", path]
    config = subprocess.run(
        ["docker", "compose", "--project-directory", str(ROOT),
         *[argument for file in files for argument in ("-f", str(file))],
         "--profile", "monitor", "--profile", "client", "config", "--format", "json"],
        capture_output=True, text=True, timeout=60, check=True,
        env={"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **env})
    # its output is a compose file again: each dollar written $$
    theirs = resolved(json.loads(config.stdout), {})["services"]
    for name, service in services(path, env).items():  # an override file: what it sets
        for field in ("command", "entrypoint"):
            if field in service:
                assert [str(a) for a in service[field]] == theirs[name][field], name
        environment = {k: str(v) for k, v in (service.get("environment") or {}).items()
                       if v is not None}  # a bare name passes the host's value, when set
        assert environment.items() <= theirs[name].get("environment", {}).items(), name
        if "healthcheck" in service:
            assert service["healthcheck"]["test"] == theirs[name]["healthcheck"]["test"], name


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_compose_file_matches_the_compose_spec(path: Path) -> None:
    validator = jsonschema.Draft7Validator(json.loads(SPEC.read_text()))  # its $schema
    document = load(path)
    validator.validate(document)
    validator.validate(resolved(document))  # every variable has a default


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_commands_name_entry_points_with_the_right_queue(path: Path) -> None:
    for name, service in our_services(path).items():
        args = argv(service)
        assert args[0] in SCRIPTS, f"{name}: {args[0]} is not an entry point"
        target = service["build"]["target"]
        assert service["image"] == f"polyfit:{target}"
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        if args[0] == "polyfit-worker":
            assert option(args, "--queues") == target  # the cuda image serves the cuda queue
            worker_cli.make_context("polyfit-worker", args[1:])  # the options parse


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_workers_restart_when_their_heartbeat_goes_stale(path: Path, tmp_path: Path) -> None:
    """The healthcheck itself, run here with its kill and its counter file redirected: fresh
    heartbeat → healthy; stale or missing → unhealthy, and the third in a row kills PID 1."""
    for name, service in our_services(path).items():
        if argv(service)[0] != "polyfit-worker":
            continue
        assert service["restart"] == "unless-stopped"
        assert service["environment"]["POLYFIT_REDIS_URL"].startswith("redis://")
        beat = service["environment"]["POLYFIT_HEARTBEAT_FILE"]
        check = service["healthcheck"]["test"]
        assert check[0] == "CMD-SHELL" and beat.startswith("/tmp/"), name
        probe = (check[1].replace("kill -s QUIT 1", "echo KILLED")
                 .replace("/tmp/unanswered", str(tmp_path / "unanswered")))
        heartbeat = tmp_path / "heartbeat"
        environment = {"PATH": os.environ["PATH"], "POLYFIT_HEARTBEAT_FILE": str(heartbeat)}

        def health(probe: str = probe, environment: dict = environment
                   ) -> subprocess.CompletedProcess:
            return subprocess.run(["sh", "-c", probe], env=environment, capture_output=True,
                                  text=True, timeout=10)

        heartbeat.touch()
        assert health().returncode == 0, name
        os.utime(heartbeat, (time.time() - 60, time.time() - 60))
        assert [health().returncode for _ in range(2)] == [1, 1]
        third = health()
        assert third.returncode == 1 and "KILLED" in third.stdout
        heartbeat.unlink()
        assert health().returncode == 1


def test_redis_persists_refuses_eviction_and_hides_its_password() -> None:
    redis = services(ROOT / "docker-compose.yml", {"REDIS_PASSWORD": "pw"})["redis"]
    command = " ".join(redis["command"])
    for setting in ("--appendonly yes", "--appendfsync everysec",
                    "--maxmemory-policy noeviction", "--requirepass pw"):
        assert setting in command
    volume, mount = redis["volumes"][0].split(":")
    assert mount == "/data" and volume in load(ROOT / "docker-compose.yml")["volumes"]
    check = redis["healthcheck"]["test"]
    assert "redis-cli ping" in check[-1] and "pw" not in check[-1] and " -a " not in check[-1]
    assert redis["environment"]["REDISCLI_AUTH"] == "pw"
    assert "ports" not in redis  # published only through deploy/compose.expose.yml
    assert services(ROOT / "deploy" / "compose.expose.yml")["redis"]["ports"]


def test_every_client_of_redis_uses_its_password() -> None:
    # with the host client's URL exported too (docs/DEPLOY.md), which containers must not take
    env = {"REDIS_PASSWORD": "pw", "POLYFIT_REDIS_URL": "redis://:pw@127.0.0.1:6379/0"}
    flower = services(ROOT / "docker-compose.yml", env)["flower"]
    urls = [flower["environment"]["CELERY_BROKER_URL"]]
    for path in COMPOSE_FILES:
        urls += [s["environment"]["POLYFIT_REDIS_URL"] for s in our_services(path, env).values()]
    assert urls and all(url == "redis://:pw@redis:6379/0" for url in urls)


def test_worker_waits_for_redis_and_flower_is_a_monitor_profile() -> None:
    stack = services(ROOT / "docker-compose.yml")
    assert stack["worker"]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert "profiles" not in stack["worker"] and "profiles" not in stack["redis"]
    assert stack["flower"]["profiles"] == ["monitor"]
    assert stack["flower"]["ports"][0].endswith(":5555")


def test_prometheus_scrapes_the_api_with_its_token_and_every_worker_on_its_port(
        tmp_path: Path) -> None:
    """Every compose worker serves its metrics on 9101 to the compose network (not the host);
    the monitor profile's Prometheus config (checked by Debian's promtool where installed)
    scrapes the API with a token it accepts, and the containers of both worker services."""
    for path in COMPOSE_FILES:
        for name, service in our_services(path).items():
            if argv(service)[0] == "polyfit-worker":
                environment = service["environment"]
                assert (environment["POLYFIT_METRICS_PORT"],
                        environment["POLYFIT_METRICS_HOST"]) == (9101, "0.0.0.0"), name
                assert "ports" not in service, name
    stack = resolved(load(ROOT / "docker-compose.yml"), {"PROMETHEUS_TOKEN": "secret"})
    assert stack["services"]["prometheus"]["profiles"] == ["monitor"]
    content = stack["configs"]["prometheus"]["content"]
    jobs = {job["job_name"]: job for job in yaml.safe_load(content)["scrape_configs"]}
    assert jobs["polyfit"]["authorization"]["credentials"] == "secret"
    assert jobs["polyfit"]["static_configs"][0]["targets"] == ["api:8000"]
    assert jobs["polyfit-workers"]["dns_sd_configs"][0] == {
        "names": ["worker", "worker-cuda"], "type": "A", "port": 9101}
    if shutil.which("promtool"):
        (tmp_path / "prometheus.yml").write_text(content)
        check = subprocess.run(["promtool", "check", "config", str(tmp_path / "prometheus.yml")],
                               capture_output=True, text=True, timeout=60)
        assert check.returncode == 0, check.stdout + check.stderr


def test_cpu_pool_takes_replicas_and_concurrency_from_the_environment() -> None:
    path = ROOT / "deploy" / "compose.cpu.yml"
    worker = services(path, {"POLYFIT_CPU_REPLICAS": "3", "POLYFIT_CONCURRENCY": "5"})["worker"]
    assert worker["deploy"]["replicas"] == "3"
    assert option(worker["command"], "--concurrency") == "5"
    assert option(worker["command"], "--queues") == "cpu"


def test_cuda_pool_reserves_a_gpu_per_worker_process() -> None:
    path = ROOT / "deploy" / "compose.cuda.yml"
    worker = services(path, {"POLYFIT_CUDA_DEVICE": "1"})["worker-cuda"]
    [device] = worker["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert device["device_ids"] == ["1"]
    assert option(worker["command"], "--queues") == "cuda"
    assert option(worker["command"], "--concurrency") == "1"  # one process, one GPU
    # its threads pool: polyfit-worker refuses POLYFIT_COMPILE there (a crash loop otherwise)
    assert option(worker["command"], "--pool") == "threads"
    compiling = services(path, {"POLYFIT_COMPILE": "true"})["worker-cuda"]
    assert compiling["environment"]["POLYFIT_COMPILE"] == "false"


@pytest.mark.parametrize("pool", ["compose.cpu.yml", "compose.cuda.yml"])
def test_pool_files_stand_alone(pool: str) -> None:
    for service in services(ROOT / "deploy" / pool).values():
        assert "depends_on" not in service  # no Redis service in this file to wait for
        assert "build" in service  # builds its own image
    url = load(ROOT / "deploy" / pool)["x-polyfit-env"]["POLYFIT_REDIS_URL"]
    assert url.startswith("${POLYFIT_POOL_REDIS_URL:-")  # point it at any Redis


def test_env_example_documents_every_setting() -> None:
    text = (ROOT / ".env.example").read_text()
    names = {f"POLYFIT_{name.upper()}" for name in Settings.model_fields}
    for path in COMPOSE_FILES:
        names |= set(re.findall(r"\$\{(\w+)", path.read_text()))
    assert sorted(name for name in names if not re.search(rf"^#? ?{name}=", text, re.M)) == []


# --- the Dockerfile ----------------------------------------------------------------------

def dockerfile_stages() -> tuple[dict[str, str], dict[str, list[str]]]:
    """The Dockerfile's ARG defaults and each stage's instructions (continuations joined)."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    defaults, stages, stage = {}, {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if match := re.match(r"FROM \S+ AS ([\w-]+)", line):
            stage = stages.setdefault(match.group(1), [])
        elif match := re.match(r"ARG (\w+)=(\S+)", line):
            defaults[match.group(1)] = match.group(2)
        if stage is not None:
            stage.append(line)
    return defaults, stages


LOCKS = ROOT / "deploy" / "lock"
INSTALL = "sh /deploy/install.sh {}"


def locked(lock: str) -> dict[str, str]:
    """A lock file's pins, name → version, each checked to carry a hash."""
    text = (LOCKS / f"{lock}.txt").read_text().replace("\\\n", " ")
    pins = {}
    for line in text.splitlines():
        if match := re.match(r"([\w.-]+)==(\S+)", line):
            assert "--hash=sha256:" in line, f"{lock}: {match.group(1)} has no hash"
            pins[match.group(1).lower()] = match.group(2)
    return pins


def test_dockerfile_installs_its_lock_with_hashes_then_the_wheel() -> None:
    text = DOCKERFILE.read_text()
    # no parser directive: the builder's own frontend, no registry pull to build
    assert not re.search(r"^#\s*syntax\s*=", text, re.M)
    _, stages = dockerfile_stages()
    for target, parent in (("cpu", "worker-base"), ("cuda", "worker-base"),
                           ("client", "base")):
        lines = stages[target]
        assert lines[0].startswith(f"FROM {parent} AS {target}")
        assert "USER polyfit" in lines  # not root
        run = " ".join(next(line for line in lines if line.startswith("RUN ")).split())
        assert run.endswith(INSTALL.format(target)), target
        assert "--mount=type=secret,id=ca,required=false" in run  # the CA, never in a layer
        assert "--mount=type=bind,from=wheel" in run  # the wheel is not kept either
        assert not any(re.search(r"apt-get|gcc|build-essential", line) for line in lines)
    script = (ROOT / "deploy" / "install.sh").read_text()
    assert 'pip.sh" install --require-hashes --no-deps -r "$here/lock/$1.txt"' in script
    assert 'pip.sh" install --no-deps /dist/polyfit-*.whl' in script and "pip check" in script
    assert any('if [ "$COMPILER" = true ]' in line and " g++ " in line
               for line in stages["worker-base"])
    copied = " ".join(stages["wheel"])
    for package in PACKAGES:
        assert f"COPY {package} {package}" in copied


def test_locks_pin_every_dependency_and_the_right_torch() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    needed = {re.match(r"[\w-]+", d).group(0).lower() for d in project["dependencies"]}
    client, cpu, cuda = locked("client"), locked("cpu"), locked("cuda")
    assert needed <= set(client) and needed <= set(cpu) and needed <= set(cuda)
    assert "torch" not in client
    assert cpu["torch"] == "2.13.0+cpu" and cuda["torch"] == "2.13.0"
    assert any(name.startswith("nvidia-") for name in cuda)
    assert all("async-timeout" in lock for lock in (client, cpu, cuda))  # bookworm's 3.11.2
    for name in set(client) & set(cpu):
        assert client[name] == cpu[name], name


def test_dockerignore_sends_only_the_package() -> None:
    lines = (ROOT / ".dockerignore").read_text().split()
    assert lines[lines.index("*") + 1:][:2] == ["!pyproject.toml", "!README.md"]
    assert all(f"!{package}/" in lines for package in PACKAGES)
    assert {"!deploy/pip.sh", "!deploy/install.sh", "!deploy/lock/"} <= set(lines)
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert sorted(setuptools["package-dir"].values()) == sorted(PACKAGES)


# --- the wheel, installed the Dockerfile's way ------------------------------------------------

def run(*args: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}, timeout=600)
    assert done.returncode == 0, f"{args}:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done.stdout


def build_wheel(tmp: Path) -> Path:
    """The wheel from the files the Dockerfile's wheel stage copies, built as it builds it."""
    source = tmp / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in PACKAGES:
        shutil.copytree(ROOT / package, source / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", tmp / "dist", source)
    [wheel] = (tmp / "dist").glob("polyfit-*.whl")
    return wheel


def venv_with(tmp: Path, name: str, installs: list[list[str]]) -> Path:
    """A fresh virtual environment with ``installs`` done in order; returns its bin folder."""
    run(sys.executable, "-m", "venv", "--without-pip", tmp / name)
    bin_ = tmp / name / "bin"
    for names in installs:  # this pip, into that venv; skipping .pyc files saves half the time
        run(sys.executable, "-m", "pip", "--python", bin_ / "python", "install", "--quiet",
            "--no-compile", *names)
    return bin_


def dockerfile_installs(lock: str, wheel: Path) -> list[list[str]]:
    """The Dockerfile's two installs: the lock with its hashes, then the wheel alone."""
    torch_index = os.environ.get("TORCH_INDEX_URL")  # else pip's own find-links, if any
    extra = ["--extra-index-url", torch_index] if torch_index and lock != "client" else []
    return [["--require-hashes", "--no-deps", "-r", str(LOCKS / f"{lock}.txt"), *extra],
            ["--no-deps", str(wheel)]]


@pytest.mark.integration
def test_wheel_installs_as_in_the_dockerfile(tmp_path: Path) -> None:
    started = time.perf_counter()
    wheel = build_wheel(tmp_path)
    built = time.perf_counter()

    client = venv_with(tmp_path, "client", dockerfile_installs("client", wheel))
    run(sys.executable, "-m", "pip", "--python", client / "python", "check")
    assert "submit" in run(client / "polyfit-client", "--help")
    no_torch = "import importlib.util as u, sys; sys.exit(u.find_spec('torch') is not None)"
    assert subprocess.run([client / "python", "-c", no_torch]).returncode == 0  # client-only
    namespaced = ("from polyfit.models import FitRequest; "
                  "from polyfit.client import PolyfitClient; import importlib.util as u, sys; "
                  "sys.exit(any(u.find_spec(n) for n in ('models', 'store', 'worker', 'client')))")
    elsewhere = tmp_path / "elsewhere"  # not tmp_path: its venvs are folders named client…
    elsewhere.mkdir()
    assert subprocess.run([client / "python", "-c", namespaced], cwd=elsewhere).returncode == 0
    client_done = time.perf_counter()

    if sys.version_info[:2] != (3, 11):  # the locks are the images' Python's
        pytest.skip(f"the cpu lock's torch is for Python 3.11, not {sys.version.split()[0]}")
    worker = venv_with(tmp_path, "worker", dockerfile_installs("cpu", wheel))
    run(sys.executable, "-m", "pip", "--python", worker / "python", "check")
    assert "--queues" in run(worker / "polyfit-worker", "--help")
    assert "submit" in run(worker / "polyfit-client", "--help")  # the image carries the client
    print(f"\nwheel {built - started:.1f} s, client venv {client_done - built:.1f} s, "
          f"worker venv {time.perf_counter() - client_done:.1f} s")


# --- scripts/gpu-check -------------------------------------------------------------------

def test_gpu_check_explains_itself() -> None:
    assert "--device" in run(sys.executable, ROOT / "scripts" / "gpu-check", "--help")


@pytest.mark.integration
def test_gpu_check_runs_its_pipeline_on_cpu() -> None:
    """Everything gpu-check does but CUDA: Redis, a worker, one job per torch approach, the
    in-process reference and the table."""
    out = run(sys.executable, ROOT / "scripts" / "gpu-check", "--device", "cpu")
    for approach in ("tensor", "autograd", "legendre", "nn", "optim", "module", "dynamic"):
        assert re.search(rf"^{approach} +cpu +[\d.]+ +[\d.e+-]+ +[\d.e+-]+$", out, re.M), out
    assert "FAILED" not in out
