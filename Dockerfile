# The project's services (worker, and later writer and bridge) in one image; docker-compose.yml
# picks the service with the command. Built from the repository root: `docker build -t shopsync .`
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY config ./config
COPY shopsync ./shopsync
COPY schemas ./schemas
COPY streams ./streams
COPY handlers ./handlers
COPY localkafka ./localkafka
COPY hubspot_sandbox ./hubspot_sandbox
COPY devtools ./devtools
RUN pip install --no-cache-dir .
RUN useradd --create-home shopsync && mkdir -p /data && chown shopsync /data
USER shopsync
ENV SHOPSYNC_DATA_DIR=/data/worker
ENTRYPOINT ["shopsync"]
