# The dispatcher worker image: `docker build -t acute-dispatcher .`
# Runs `dispatcher worker` as a non-root user; the same image runs `dispatcher-traffic` (demo),
# `dispatcher migrate` and `dispatcher roster load` with another command.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY dispatcher ./dispatcher
RUN python -m pip wheel --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DISPATCHER_WEB_HOST=0.0.0.0 \
    DISPATCHER_WEB_PORT=6066 \
    DISPATCHER_LOG_FORMAT=json
RUN groupadd --system --gid 10001 dispatcher \
    && useradd --system --uid 10001 --gid dispatcher --home-dir /app --shell /usr/sbin/nologin dispatcher \
    && mkdir -p /app && chown dispatcher:dispatcher /app
COPY --from=build /wheels /wheels
RUN python -m pip install /wheels/*.whl && rm -rf /wheels
# faust keeps a small data directory in the working directory: it must be writable.
WORKDIR /app
USER 10001:10001
EXPOSE 6066
HEALTHCHECK --interval=10s --timeout=3s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('DISPATCHER_WEB_PORT', '6066'); sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["dispatcher"]
CMD ["worker"]
