# syntax=docker/dockerfile:1
# Concord's image: the web server (gunicorn), the Celery worker, Celery beat and migrate all run
# from it, with different commands (compose.yaml, docs/scaling.md).

# --- Front-end packages (Chart.js), exactly as package-lock.json says ---------------------------
FROM node:22-slim AS assets
WORKDIR /build
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error

# --- The application ---------------------------------------------------------------------------
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Pango and the DejaVu fonts WeasyPrint draws invoice and statement PDFs with (`make system-deps`),
# at the versions of the base image's Debian release.
# hadolint ignore=DL3008
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core fontconfig \
    && rm -rf /var/lib/apt/lists/*

# The processes run as this user; the code stays root's, so they cannot change it.
RUN groupadd --system --gid 10001 concord \
    && useradd --system --uid 10001 --gid concord --create-home --home-dir /home/concord concord

WORKDIR /app
COPY requirements.txt ./
RUN pip install -r requirements.txt
COPY --from=assets /build/node_modules ./node_modules
COPY . .

# Static files are collected into the image with the manifest production serves them from
# (whitenoise). Settings need their production values to load: these are placeholders nothing
# connects to, set for this one command only. var/media (export results, generated PDFs) belongs
# to the processes' user; compose.yaml mounts a volume there that web and workers share.
RUN DJANGO_ENV=production \
    SECRET_KEY=collectstatic-only-placeholder-never-used-to-sign-anything \
    ALLOWED_HOSTS=localhost \
    DATABASE_URL=postgres://placeholder@localhost/placeholder \
    CELERY_BROKER_URL=redis://localhost:6379/0 \
    python manage.py collectstatic --noinput \
    && mkdir -p var/media \
    && chown concord:concord var var/media

# The concord user, by number, so that an orchestrator can see it is not root.
USER 10001:10001
EXPOSE 8000
# The web server by default (gunicorn starts $WEB_CONCURRENCY processes, default 1); compose.yaml
# gives the worker, beat and migrate their own commands.
CMD ["gunicorn", "config.wsgi:application", "--bind", "0.0.0.0:8000", "--access-logfile", "-"]
