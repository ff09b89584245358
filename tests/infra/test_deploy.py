"""The container deployment validates without Docker, and the validator catches what Compose would refuse."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra import deploy_check
from infra.deploy_check import COMPOSE_FILE, ENV_EXAMPLE, InterpolationError, check, interpolate_string


def test_the_committed_deployment_is_valid() -> None:
    assert check() == []


def test_interpolation_follows_compose_rules() -> None:
    env = {"SET": "v", "EMPTY": ""}
    assert interpolate_string("a-${SET}-$SET-$$SET", env) == "a-v-v-$SET"
    assert interpolate_string("${UNSET:-d} ${EMPTY:-d} ${EMPTY-d} ${UNSET-d}", env) == "d d  d"
    with pytest.raises(InterpolationError, match="EMPTY is missing a value: needed"):
        interpolate_string("${EMPTY:?needed}", env)
    assert interpolate_string("${EMPTY?needed}", env) == ""


def _variant(tmp_path: Path, old: str, new: str, env_text: str | None = None) -> list[str]:
    """check() on a copy of the compose file with one edit (and optionally another env file)."""
    text = COMPOSE_FILE.read_text()
    assert old in text
    infra = tmp_path / "infra"
    (infra / "docker").mkdir(parents=True)
    (infra / "spark").mkdir()
    (infra / "spark" / "spark-defaults.conf").write_text("")
    (infra / "docker" / "Dockerfile").write_text((COMPOSE_FILE.parent / "docker" / "Dockerfile").read_text())
    (tmp_path / "dags").mkdir()
    compose = infra / "compose.yaml"
    compose.write_text(text.replace(old, new, 1))
    env = infra / ".env.example"
    env.write_text(env_text if env_text is not None else ENV_EXAMPLE.read_text())
    return check(compose, env, repo_root=tmp_path)


def test_the_copy_is_valid_before_it_is_broken(tmp_path: Path) -> None:
    assert _variant(tmp_path, "name: voiplake", "name: voiplake") == []


@pytest.mark.parametrize("old,new,expected", [
    ("    restart: unless-stopped\n\n  minio:", "    restrat: unless-stopped\n\n  minio:",
     "schema: services/postgres: Unevaluated properties are not allowed ('restrat' was unexpected)"),
    ("      - spark-master\n", "      - spark-mastr\n", "unknown service 'spark-mastr'"),
    ("      POSTGRES_PASSWORD: ${AIRFLOW_DB_PASSWORD:?set it in infra/.env}", "      POSTGRES_PASSWORD: hunter2",
     "services.postgres.environment.POSTGRES_PASSWORD: a credential must come from the environment"),
    ("image: postgres:16.6-bookworm", "image: postgres", "services.postgres.image: postgres is not pinned"),
    ("      - minio-data:/data", "      - minio-dat:/data", "undeclared named volume 'minio-dat'"),
    ("    - ../dags:/opt/voiplake/dags:ro", "    - ../dagz:/opt/voiplake/dags:ro", "host path ../dagz does not exist"),
    ("  VOIPLAKE_SPARK_MASTER: spark://spark-master:7077", "  VOIPLAKE_SPARK_MASTER: local[2]",
     "spark master local[2] is not the compose Spark master"),
    ("  VOIPLAKE_SPARK_EXECUTOR_CORES: \"2\"", "  VOIPLAKE_SPARK_EXECUTOR_CORES: two",
     "VOIPLAKE_* settings do not load: spark.executor_cores: expected int"),
])
def test_each_kind_of_mistake_is_reported(tmp_path: Path, old: str, new: str, expected: str) -> None:
    problems = _variant(tmp_path, old, new)
    assert any(expected in p for p in problems), problems


def test_a_missing_required_variable_and_a_real_secret_in_the_example_are_reported(tmp_path: Path) -> None:
    env = ENV_EXAMPLE.read_text()
    missing = "\n".join(l for l in env.splitlines() if not l.startswith("AIRFLOW_JWT_SECRET"))
    assert any("AIRFLOW_JWT_SECRET is missing a value" in p for p in _variant(tmp_path, "name: voiplake", "name: voiplake", missing))
    leaked = env.replace("AIRFLOW_DB_PASSWORD=change-me-db-password", "AIRFLOW_DB_PASSWORD=s3cr3t-real")
    assert any("AIRFLOW_DB_PASSWORD holds a value that is not a placeholder" in p
               for p in _variant(tmp_path / "x", "name: voiplake", "name: voiplake", leaked))


def test_cli_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert deploy_check.main([]) == 0
    assert "compose.yaml: valid" in capsys.readouterr().out
