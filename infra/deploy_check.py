"""Validate the container deployment (infra/compose.yaml and friends) on a machine without Docker.

`python -m infra.deploy_check [--env-file infra/.env.example]` does what `docker compose config` would catch and
a little more, and exits 1 listing every problem:

- variable interpolation as Compose does it (`$$`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?err}`,
  `${VAR?err}`), with the env file's values: an unset required variable is an error;
- the interpolated file against the Compose Specification's JSON schema, vendored from compose-go v2.16.2
  (`infra/schema/compose-spec.json`, Apache-2.0, the loader Docker Compose itself uses);
- references: depends_on, secrets and named volumes that exist; build contexts and Dockerfiles, and bind-mounted
  host paths, that exist in the repository;
- no credential written literally: every environment key naming a password, secret, key or token must come from
  interpolation, and the env example must hold placeholders only;
- images pinned (no `latest`, no untagged image);
- the VOIPLAKE_* environment the jobs get loads through `lake_layout.config.load_settings`, pointing the lake at
  s3a:// and Spark at the standalone master.

Why not a library: no PyPI package validates Compose files against the current specification with its
interpolation rules; compose-go does, but needs a Go toolchain at test time. The schema is the same file it uses.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any, Iterator, Mapping

import yaml
from jsonschema import Draft202012Validator

INFRA = Path(__file__).resolve().parent
COMPOSE_FILE = INFRA / "compose.yaml"
ENV_EXAMPLE = INFRA / ".env.example"
SCHEMA_FILE = INFRA / "schema" / "compose-spec.json"

_VAR = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
                  r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*))")
_SECRETISH = re.compile(r"(PASSWORD|SECRET|_KEY$|TOKEN|CREDENTIAL)", re.IGNORECASE)


class InterpolationError(ValueError):
    """A required variable is unset (`${VAR:?message}`)."""


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (comments and blank lines ignored), as Compose's --env-file reads them."""
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            if not sep:
                raise ValueError(f"{path.name}: not KEY=VALUE: {line!r}")
            env[key.strip()] = value.strip()
    return env


def interpolate_string(value: str, env: Mapping[str, str]) -> str:
    def sub(m: re.Match[str]) -> str:
        if m.group("escaped"):
            return "$"
        name = m.group("braced") or m.group("named")
        op, arg = m.group("op"), m.group("arg") or ""
        current = env.get(name)
        unset_or_empty = current is None or (current == "" and op is not None and op.startswith(":"))
        if op in (":-", "-"):
            return arg if (current is None if op == "-" else unset_or_empty) else str(current)
        if op in (":?", "?"):
            if current is None if op == "?" else unset_or_empty:
                raise InterpolationError(f"required variable {name} is missing a value: {arg}")
        return "" if current is None else str(current)

    return _VAR.sub(sub, value)


def interpolate(node: Any, env: Mapping[str, str]) -> Any:
    """The compose document with every string interpolated (keys are not interpolated, as in Compose)."""
    if isinstance(node, dict):
        return {k: interpolate(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate(v, env) for v in node]
    if isinstance(node, str):
        return interpolate_string(node, env)
    return node


def _env_items(environment: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(environment, dict):
        yield from environment.items()
    elif isinstance(environment, list):
        for item in environment:
            key, _, value = str(item).partition("=")
            yield key, value


def _host_path(source: str) -> bool:
    return source.startswith((".", "/", "~"))


def check(compose_file: Path = COMPOSE_FILE, env_file: Path = ENV_EXAMPLE, *,
          repo_root: Path | None = None) -> list[str]:
    """Every problem of the deployment files ([] when valid)."""
    repo_root = repo_root or compose_file.resolve().parent.parent
    problems: list[str] = []
    raw_text = compose_file.read_text()
    raw = yaml.safe_load(raw_text)  # resolves YAML anchors and `<<` merge keys like Compose
    env = read_env_file(env_file)
    for key, value in env.items():
        if _SECRETISH.search(key) and not value.startswith("change-me") and not value.startswith("./"):
            problems.append(f"{env_file.name}: {key} holds a value that is not a placeholder (change-me...)")
    try:
        doc = interpolate(raw, env)
    except InterpolationError as exc:
        return problems + [f"interpolation: {exc}"]
    schema = json.loads(SCHEMA_FILE.read_text())
    for err in sorted(Draft202012Validator(schema).iter_errors(doc), key=lambda e: list(e.path)):
        where = "/".join(str(p) for p in err.path) or "(top)"
        problems.append(f"schema: {where}: {err.message}")
    if problems:
        return problems

    services: dict[str, Any] = doc.get("services", {})
    volumes, secrets = set(doc.get("volumes") or {}), set(doc.get("secrets") or {})
    base = compose_file.resolve().parent
    for name, svc in services.items():
        deps = svc.get("depends_on") or []
        for dep in deps if isinstance(deps, list) else deps.keys():
            if dep not in services:
                problems.append(f"services.{name}.depends_on: unknown service {dep!r}")
        for s in svc.get("secrets") or []:
            s_name = s if isinstance(s, str) else s.get("source")
            if s_name not in secrets:
                problems.append(f"services.{name}.secrets: undeclared secret {s_name!r}")
        for v in svc.get("volumes") or []:
            source = v.split(":", 1)[0] if isinstance(v, str) else v.get("source", "")
            if _host_path(source):
                if not (base / source).resolve().exists():
                    problems.append(f"services.{name}.volumes: host path {source} does not exist")
            elif source and source not in volumes:
                problems.append(f"services.{name}.volumes: undeclared named volume {source!r}")
        build = svc.get("build")
        if build is not None:
            context = (base / (build if isinstance(build, str) else build.get("context", "."))).resolve()
            dockerfile = context / ((build.get("dockerfile") if isinstance(build, dict) else None) or "Dockerfile")
            if not dockerfile.exists():
                problems.append(f"services.{name}.build: {dockerfile} does not exist")
        image = svc.get("image")
        if image is None and build is None:
            problems.append(f"services.{name}: neither image nor build")
        if image and build is None and (":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")):
            problems.append(f"services.{name}.image: {image} is not pinned to a version tag")
    # Literal credentials: look at the raw (uninterpolated) document.
    for name, svc in (raw.get("services") or {}).items():
        for key, value in _env_items(svc.get("environment")):
            if _SECRETISH.search(key) and "${" not in str(value):
                problems.append(f"services.{name}.environment.{key}: a credential must come from the environment")
    for line in (repo_root / "infra" / "docker" / "Dockerfile").read_text().splitlines():
        if line.startswith("FROM") and (":" not in line or ":latest" in line):
            problems.append(f"Dockerfile: base image not pinned: {line}")
    problems += _check_settings(services)
    return problems


def _check_settings(services: Mapping[str, Any]) -> list[str]:
    """The jobs' VOIPLAKE_* environment must load and point at s3a:// and the standalone master."""
    from lake_layout.config import SettingsError, load_settings

    problems = []
    for name, svc in services.items():
        env = {k: str(v) for k, v in _env_items(svc.get("environment")) if k.startswith("VOIPLAKE_")}
        if not env:
            continue
        try:
            settings = load_settings(env=env)
        except SettingsError as exc:
            problems.append(f"services.{name}: VOIPLAKE_* settings do not load: {exc}")
            continue
        if not settings.lake.root.startswith("s3a://"):
            problems.append(f"services.{name}: lake root {settings.lake.root} is not on the object store")
        if not settings.spark.master.startswith("spark://") or settings.spark.master.split("//")[1].split(":")[0] not in services:
            problems.append(f"services.{name}: spark master {settings.spark.master} is not the compose Spark master")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compose", type=Path, default=COMPOSE_FILE)
    parser.add_argument("--env-file", type=Path, default=ENV_EXAMPLE)
    args = parser.parse_args(argv)
    problems = check(args.compose, args.env_file)
    for p in problems:
        print(p)
    print(f"{args.compose.name}: {'valid' if not problems else f'{len(problems)} problem(s)'}")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
