# syncd in a container: the daemon (`syncd run`) with /healthz and /metrics on port 9464.
#
#   docker build -t syncd .
#   docker run -d --name syncd -v syncd-data:/data -v "$PWD/config.toml:/config/config.toml:ro" \
#       -e HUBSPOT_ACCESS_TOKEN -e SALESFORCE_ACCESS_TOKEN -p 9464:9464 syncd
#
# Config comes from the mounted file (SYNCD_CONFIG) and/or SYNCD_<SECTION>__<KEY> variables and
# /run/secrets/syncd_<section>_<key> files (an empty /config/config.toml ships in the image).
# The store lives on the /data volume: a relative [store] path would resolve next to the
# mounted config, so SYNCD_STORE__PATH below pins it to /data/syncd.db (override with -e).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed uid, so that volume permissions can be prepared on the host (chown 10001 /srv/syncd).
RUN groupadd --system --gid 10001 syncd \
    && useradd --system --uid 10001 --gid syncd --home-dir /data --shell /usr/sbin/nologin syncd

WORKDIR /src
COPY pyproject.toml README.md ./
COPY syncd ./syncd
COPY connectors ./connectors
# The runtime dependencies only: no dev extras, no tests in the image.
RUN pip install . && rm -rf /src

# An empty config, so that a deployment configured only through SYNCD_* variables and secrets
# needs no mount; a mounted /config/config.toml replaces it.
RUN mkdir -p /data /config \
    && printf '# Configured through SYNCD_<SECTION>__<KEY> variables; mount a file here.\n' \
        > /config/config.toml \
    && chown syncd:syncd /data
WORKDIR /data
VOLUME /data

ENV SYNCD_CONFIG=/config/config.toml \
    SYNCD_STORE__PATH=/data/syncd.db

USER syncd:syncd
EXPOSE 9464

# /healthz: 200 while the last pass succeeded within twice the schedule interval. The start
# period covers the first pass, a backfill (the daemon itself answers "starting" meanwhile).
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["python", "-m", "syncd.healthcheck"]

# SIGTERM (docker stop) finishes the page in hand and exits 0 within 10 s, docker's default.
STOPSIGNAL SIGTERM
CMD ["syncd", "run"]
