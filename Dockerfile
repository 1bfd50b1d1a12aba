# syntax=docker/dockerfile:1
# One image for every PainCare service and role. The command picks both:
#   web:     gunicorn -c deploy/gunicorn.conf.py "services.<name>.app:create_app()"
#   worker:  python -m services.<name>.worker
#   migrate: python -m shared.migrations upgrade <name>|all
# (see docker-compose.yml and deploy/k8s/ for every service's exact command).

# The base by digest, so a rebuild gets the same bytes (the tag python:3.11-slim-bookworm
# moves). Renew it on purpose: `docker buildx imagetools inspect python:3.11-slim-bookworm`.
# `make proof-deploy` passes a debootstrap'd Debian bookworm base here instead.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91

# --- build: the locked runtime dependencies (no dev extras) in a virtualenv -----------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
# Only the lock file: this layer is rebuilt when a dependency changes, not when the code
# does. Every package, transitive ones too, at its pinned version and checked by hash;
# the image runs the sources from /app (migrations and Alembic scripts included).
COPY requirements.lock ./
RUN /opt/venv/bin/pip install --require-hashes --no-deps -r requirements.lock

# --- runtime: slim Python, the virtualenv, the sources, a non-root user ----------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PAINCARE_ENV=production
# production unless told otherwise: only the identity provider's tokens, and a service
# without OIDC_ISSUER refuses to start (compose and the dev overlay say development)
RUN groupadd --system --gid 10001 paincare \
 && useradd --system --uid 10001 --gid paincare --home-dir /app --shell /usr/sbin/nologin paincare
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --chown=root:root shared ./shared
COPY --chown=root:root services ./services
COPY --chown=root:root deploy/gunicorn.conf.py ./deploy/gunicorn.conf.py
COPY --chown=root:root deploy/docker/entrypoint.sh deploy/docker/probe.py ./deploy/docker/
# The code is owned by root and read-only for the service user; it writes only to /tmp
# (gunicorn's heartbeat files, Prometheus multiprocess files), an emptyDir on Kubernetes.
USER 10001:10001
# web ports (one per service, see deploy/README.md) and the worker's metrics port
EXPOSE 8001 8002 8003 8004 8005 8006 8007 9100
ENTRYPOINT ["/app/deploy/docker/entrypoint.sh"]
# No default service: every container names its service and role in its command.
CMD ["python", "-c", "print('give a command: gunicorn ... services.<name>.app:create_app() | python -m services.<name>.worker | python -m shared.migrations upgrade all')"]
