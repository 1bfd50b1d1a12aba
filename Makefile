# PainCare: the two commands are `make up` (the whole clinic) and `make test` (every test).
SHELL := /bin/bash
PY := .venv/bin/python

.PHONY: up down status test bootstrap kafka postgres lint unit integration e2e bench proof proof-deploy

up: bootstrap                ## Kafka, every service (web + worker), demo data; prints the URLs
	BROWSER=0 $(PY) scripts/clinic.py up

down:                        ## stop the services, Kafka and Keycloak
	-$(PY) scripts/clinic.py down
	-scripts/kafka.sh stop
	-scripts/keycloak.sh stop
	-scripts/keycloak.sh stop

status:
	$(PY) scripts/clinic.py status

bootstrap:
	BROWSER=$${BROWSER:-1} scripts/bootstrap.sh

kafka:
	scripts/kafka.sh start

postgres:
	scripts/postgres.sh start

lint: bootstrap              ## ruff; architecture rules (lint-imports) and types (mypy), pyproject's config
	.venv/bin/ruff check .
	PYTHONPATH=$(CURDIR) .venv/bin/lint-imports --no-cache
	.venv/bin/mypy

test: bootstrap kafka postgres lint   ## unit, integration and e2e tests, on SQLite and PostgreSQL, real Kafka
	@$(PY) -m pytest tests -p no:cacheprovider --durations=30 $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc = 5 ]; then echo "make test: pytest collected no tests: a failure"; fi; exit $$rc

unit: bootstrap
	$(PY) -m pytest tests/unit -q

bench: bootstrap kafka      ## benchmarks: figures and ratios against a baseline in the same run
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

proof: bootstrap postgres   ## long forms of the fault, load, bad-input and security proofs (own broker), summary table
	$(PY) scripts/proof.py $(PROOF_ARGS)

proof-short: bootstrap postgres   ## the same suites in the short forms the normal suite runs
	$(PY) scripts/proof.py --short $(PROOF_ARGS)

proof-security proof-hostile proof-bad-input proof-faults proof-journeys proof-load: bootstrap postgres
	$(PY) scripts/proof.py --only $(@:proof-%=%) $(PROOF_ARGS)

proof-deploy: bootstrap kafka postgres   ## deploy/ through the real validators; the image built and run hardened (podman)
	scripts/proof_deploy.sh
