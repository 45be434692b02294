# PFI engine image (docker compose: see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN apt-get update && apt-get install -y --no-install-recommends tzdata \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --create-home --home-dir /var/lib/pfi pfi

WORKDIR /opt/pfi
COPY pyproject.toml README.md ./
COPY pfi ./pfi
COPY config ./config
RUN pip install --no-compile .

USER pfi
WORKDIR /var/lib/pfi
EXPOSE 8080 2575 2576 2577
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/readyz', timeout=4).status == 200 else 1)"
STOPSIGNAL SIGTERM
CMD ["pfi", "run", "--config", "/etc/pfi/pfi.yaml"]
