# syntax=docker/dockerfile:1
# Truce: one process with the embedded SQLite database on a volume.
#   docker build -t truce . && docker run -p 8000:8000 -v truce-data:/data truce

# The map's Leaflet assets, from the npm registry at the versions of package-lock.json.
FROM node:20-bookworm-slim AS assets
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/truce
COPY pyproject.toml README.md ./
COPY app ./app
COPY --from=assets /src/node_modules /src/node_modules
RUN python -m app.assets --from /src/node_modules --to /src/app/static/vendor \
    && /opt/truce/bin/pip install .

FROM python:3.11-slim-bookworm AS runtime
ENV PATH=/opt/truce/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    TRUCE_DATABASE_URL=sqlite:////data/truce.sqlite \
    TRUCE_GEODATA_DIR=/opt/truce/geodata
RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin truce \
    && mkdir -p /data \
    && chown truce /data
COPY --from=build /opt/truce /opt/truce
COPY geodata /opt/truce/geodata
USER 10001
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2).status != 200)"]
CMD ["truce", "serve", "--host", "0.0.0.0", "--port", "8000"]
