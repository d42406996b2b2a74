"""The docker-compose deployment: valid for docker-compose (when installed; no engine is needed), and
shaped as docs/operations.md describes it: health-checked Redis and PostgreSQL with a volume, a one-shot
migration, scalable workers, one beat, the web app; every knob it reads is listed in .env.example."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from app.config import PROJECT_ROOT, Settings
from tests.support.services import skip_or_fail

COMPOSE_FILE = PROJECT_ROOT / "docker-compose.yml"
ENV_EXAMPLE = PROJECT_ROOT / ".env.example"
DOCKERFILE = PROJECT_ROOT / "Dockerfile"
DOCKERIGNORE = PROJECT_ROOT / ".dockerignore"
# Read by docker-compose.yml only, not by the application.
COMPOSE_ONLY_VARIABLES = {"POSTGRES_PASSWORD", "POSTCALL_WORKER_STOP_GRACE", "POSTCALL_WEB_PORT"}
APP_SERVICES = ("worker", "beat", "web")


def _compose() -> dict[str, Any]:
    try:
        import yaml
    except ImportError:
        skip_or_fail("PyYAML is not installed (a dev dependency): cannot read docker-compose.yml")
    document = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(document, dict)
    return document


def _run_config(**env: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    if binary is None:
        skip_or_fail("docker-compose is not installed (Debian: apt-get install docker-compose)")
    assert binary is not None
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("POSTCALL_", "POSTGRES_", "OPENAI_"))}
    return subprocess.run(
        [binary, "--project-directory", str(PROJECT_ROOT), "-f", str(COMPOSE_FILE), "config", "-q"],
        env={**clean, **env},
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_docker_compose_accepts_the_file() -> None:
    valid = _run_config(POSTCALL_SECRET_KEY="test-only-secret")
    assert valid.returncode == 0, valid.stderr
    # The session-signing secret has no default: the stack refuses to start without one.
    missing_secret = _run_config()
    assert missing_secret.returncode != 0
    assert "POSTCALL_SECRET_KEY" in missing_secret.stderr


def test_services_health_checks_and_ordering() -> None:
    services = _compose()["services"]
    assert set(services) == {"postgres", "redis", "migrate", *APP_SERVICES}

    for backend in ("postgres", "redis"):
        assert services[backend]["healthcheck"]["test"], f"{backend} needs a health check"
        volumes = [str(volume) for volume in services[backend]["volumes"]]
        assert any(volume.endswith(("/var/lib/postgresql/data", "/data")) for volume in volumes), backend

    migrate = services["migrate"]
    assert migrate["command"] == ["db", "upgrade"]
    assert migrate["restart"] == "no"  # one-shot
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"

    for name in APP_SERVICES:
        service = services[name]
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        assert service["environment"]["POSTCALL_BROKER_URL"].startswith("redis://redis:")
        assert service["environment"]["POSTCALL_DATABASE_URL"].startswith("postgresql+psycopg://")

    worker = services["worker"]
    # `--scale worker=N` needs replicas that can coexist: no fixed name, no published port.
    assert "container_name" not in worker and "ports" not in worker
    assert worker["command"] == ["worker"]
    assert "stop_grace_period" in worker  # time to finish calls in flight on SIGTERM
    assert "healthcheck" in worker
    assert "beat" in services["beat"]["entrypoint"]
    assert services["web"]["command"][0] == "serve"
    assert any(str(port).endswith(":8000") for port in services["web"]["ports"])


def test_the_web_service_shows_the_settings_serve_warns_about() -> None:
    # `serve --host 0.0.0.0` warns while either is unset (app/web/exposure.py): the operator finds them here.
    web = _compose()["services"]["web"]
    assert "0.0.0.0" in web["command"]
    environment = web["environment"]
    assert environment["POSTCALL_METRICS_TOKEN"] == "${POSTCALL_METRICS_TOKEN:-}"
    assert environment["POSTCALL_HTTPS_ONLY"] == "${POSTCALL_HTTPS_ONLY:-false}"
    assert {"metrics_token", "https_only"} <= set(Settings.model_fields)
    # Everything the other services get, the web service gets too.
    assert environment.items() >= _compose()["services"]["worker"]["environment"].items()


def test_env_example_lists_every_variable_and_only_real_settings() -> None:
    used = set(re.findall(r"\$\{(\w+)", COMPOSE_FILE.read_text()))
    listed = {
        line.split("=", 1)[0].strip()
        for line in ENV_EXAMPLE.read_text().splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    }
    assert used <= listed, f"missing from .env.example: {sorted(used - listed)}"
    settings_fields = {f"POSTCALL_{name.upper()}" for name in Settings.model_fields}
    unknown = {name for name in listed if name.startswith("POSTCALL_")} - settings_fields - COMPOSE_ONLY_VARIABLES
    assert not unknown, f"not a setting in app/config.py: {sorted(unknown)}"


def test_dockerfile_copies_files_that_exist_and_are_not_ignored() -> None:
    ignored = {line.strip() for line in DOCKERIGNORE.read_text().splitlines() if line.strip() and line[0] != "#"}
    sources = [
        source
        for line in DOCKERFILE.read_text().splitlines()
        if line.startswith("COPY ")
        for source in line.split()[1:-1]
    ]
    assert sources
    for source in sources:
        assert (PROJECT_ROOT / source).exists(), f"Dockerfile copies {source}, which does not exist"
        assert Path(source).parts[0] not in ignored, f"Dockerfile copies {source}, which .dockerignore excludes"
