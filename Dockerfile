# One image for both services and the web client; compose.yaml (deploy/) runs it as each
# replica. The command picks which: the default is the SIP plans service.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PATH=/opt/sip/venv/bin:$PATH \
    SIP_DATA_DIR=/var/lib/sip SIP_KEY_DIR=/var/lib/sip/keys

# A user of its own, owning only the state directory; the keys directory is the service
# user's alone (a named volume mounted there keeps this owner and mode).
RUN useradd --system --uid 10001 --home-dir /var/lib/sip --shell /usr/sbin/nologin sip \
    && install -d -o sip -g sip -m 0700 /var/lib/sip /var/lib/sip/keys

WORKDIR /opt/sip/src
COPY pyproject.toml README.md ./
COPY contracts ./contracts
COPY services ./services
RUN python -m venv /opt/sip/venv && /opt/sip/venv/bin/pip install . && rm -rf /opt/sip/src

WORKDIR /var/lib/sip
USER sip
EXPOSE 8000
# Behind the compose network's nginx: forwarded headers are believed from any peer, so the
# replicas must not be published beyond that network.
CMD ["uvicorn", "services.sip.api:create_served_app", "--factory", "--host", "0.0.0.0", "--port", "8000", \
     "--no-access-log", "--proxy-headers", "--forwarded-allow-ips", "*"]
