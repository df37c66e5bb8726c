# Switchyard production image.
# Web builder: the React app needs Node 20 (Vite 7, mediasoup-client 3.18); Debian's is older.
FROM node:20-bookworm-slim AS web
WORKDIR /web
# an npm workspace: the client package's manifest is needed for npm ci too (web/packages/client)
COPY web/package.json web/package-lock.json ./
COPY web/packages/client/package.json ./packages/client/
RUN npm ci --no-audit --no-fund
COPY web ./
RUN npm run build

# Python builder: compiles the Cython fast path into a wheel.
FROM python:3.11-slim-bookworm AS builder
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The whole checkout less .dockerignore: pyproject.toml's [tool.setuptools] packages decide what the
# wheel holds, so a new package needs no line here.
COPY . ./
# The SDK (sdk/python/) is a dependency of the server that no index has: built from its path in the
# same call, it satisfies the server's requirement by name and lands in /wheels beside it.
RUN pip wheel --no-cache-dir --wheel-dir /wheels ./sdk/python .

# Runtime: the wheels and the built web app only; no compiler, no Node.
FROM python:3.11-slim-bookworm
ENV PYTHONUNBUFFERED=1 \
    SWITCHYARD_HOST=0.0.0.0 \
    SWITCHYARD_PORT=3000 \
    SWITCHYARD_SIGNALING_PORT=4000 \
    SWITCHYARD_RTC_PORT_BASE=40000 \
    SWITCHYARD_DATABASE_URL=sqlite+aiosqlite:////data/switchyard.db
COPY --from=builder /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
 && useradd --system --uid 10001 --home-dir /data --create-home switchyard
COPY --from=web /web/dist/ /opt/switchyard/web/dist/
ENV SWITCHYARD_WEB_DIR=/opt/switchyard/web/dist
USER switchyard
WORKDIR /data
VOLUME ["/data"]
# HTTP (REST, web app, Socket.IO), the signaling port, and one RTC port per worker (UDP and TCP).
EXPOSE 3000 4000 40000-40063/udp 40000-40063/tcp
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:3000/api/health', timeout=2).status == 200 else 1)"
ENTRYPOINT ["switchyard"]
CMD ["serve"]
