# voiplake — the two commands a new machine needs: `make run` and `make test`.
# Everything they install or resolve lives in .venv/ and build/ (both ignored).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)
DATE   ?= 2026-11-24
EVENTS ?= 200000
SEED   ?= 7

export AIRFLOW_HOME := $(CURDIR)/build/airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup run test test-cluster test-fast bench proto clean vault

# Recipes print one line each (what they set up, where); the tools' own output stays quiet or goes to build/logs/.
$(STAMP): requirements.lock pyproject.toml
	@echo "setup: Python packages of requirements.lock into $(VENV)/"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q -r requirements.lock
	@$(PY) -m pip install -q --no-deps -e .
	@rm -f $(VENV)/.installed-*
	@touch $@

# venv, S3Proxy jars (Maven) and Spark's jars (Ivy): each resolved once into the ignored cache.
setup: $(STAMP)
	@echo "setup: S3Proxy jars in $$($(PY) -m infra.objectstore resolve)"
	@$(PY) -m jobs.cli.main warmup
	@$(PY) -c 'from jobs.telemetry.schema_compat import protoc_python; protoc_python()'

## run: one generated day of telemetry -> landing zone -> Airflow ingestion DAG -> bronze, then a summary.
run: setup
	@$(VENV)/bin/voiplake demo --date $(DATE) --events $(EVENTS) --seed $(SEED)

## test: the whole suite (unit + end-to-end on the local object store and Airflow).
test: setup
	$(PY) -m pytest tests -m "not cluster" -n 2 --dist loadfile --durations=25

## test-cluster: the daily pipeline on a real Spark standalone master + worker on loopback vs the local run.
test-cluster: setup
	$(PY) -m pytest tests -m cluster --durations=5

test-fast: setup
	$(PY) -m pytest tests -m "not e2e and not cluster"

## bench: a generated day (BENCH_EVENTS, default 1M) through the pipeline stage by stage vs the I/O floor;
## reports in build/reports/bench-*.{json,md} and bench/results/latest.*. SCALE=1: the curve over SCALE_SIZES.
BENCH_EVENTS ?= 1000000
SCALE ?=
SCALE_SIZES ?= 1000000,3000000
bench: setup
	$(VENV)/bin/voiplake bench --date $(DATE) --events $(BENCH_EVENTS) --seed $(SEED) $(if $(SCALE),--scale --scale-sizes $(SCALE_SIZES))

## vault: a HashiCorp Vault server binary (build/vault/vault) for the Vault Transit key-provider tests, built
## once from the Go module proxy and cached in ~/.cache/voiplake (tests skip the Vault part without it).
vault:
	bash infra/vault/build.sh

# Regenerate jobs/telemetry/upload_pb2.py after editing upload.proto, with the pinned grpcio-tools protoc that
# `voiplake schema check` uses (its own venv, build/protoc-venv), then check the schema versions.
proto: $(STAMP)
	PROTOC_PY=$$($(PY) -c 'from jobs.telemetry.schema_compat import protoc_python; print(protoc_python())') && \
	$$PROTOC_PY -m grpc_tools.protoc -Ijobs/telemetry --python_out=jobs/telemetry --pyi_out=jobs/telemetry jobs/telemetry/upload.proto
	sed -i 's/^import upload_pb2/from jobs.telemetry import upload_pb2/' jobs/telemetry/upload_pb2.py
	$(VENV)/bin/voiplake schema check

clean:
	rm -rf build/lake build/lake.audit-anchors build/audit-anchors build/objectstore build/airflow build/reports
