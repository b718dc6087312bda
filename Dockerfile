# Audio similarity search service.
#   docker build -t audiosearch .
#   docker run -p 127.0.0.1:8080:8080 -v "$PWD/models:/app/models" \
#       -v audiosearch-index:/app/workspace -v /path/to/sounds:/data:ro audiosearch
# then index /data/... paths: python app.py index /data (inside) or POST /index {"uri": "/data/x.wav"}.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
# Clients may name audio files under /data, where the sound library is mounted.
ENV AUDIOSEARCH_ALLOWED_ROOTS=/data

# The CPU build of torch comes from PyTorch's own index; PyPI's 2.13.0 is the multi-GB CUDA one.
COPY requirements.txt requirements-nodeps.txt ./
RUN pip install 'setuptools==80.10.2' \
 && pip install --extra-index-url https://download.pytorch.org/whl/cpu -r requirements.txt \
 && pip install --no-deps -r requirements-nodeps.txt

COPY pyproject.toml README.md flow.yml app.py ./
COPY audiosearch/ audiosearch/
COPY executors/ executors/
COPY models/README.md models/
COPY toy-data/ toy-data/
RUN pip install --no-deps --no-build-isolation -e . \
 && useradd --create-home --uid 10001 audiosearch \
 && mkdir -p /app/workspace \
 && chown -R audiosearch:audiosearch /app/workspace /app/models

# `python app.py export kubernetes|docker-compose` runs each executor from an image of its own,
# built with these arguments (the export prints the commands); Jina starts it with
# `jina executor --uses config.yml`.
ARG EXECUTOR=""
ARG PY_MODULE=""
RUN if [ -n "$EXECUTOR" ]; then \
      printf 'jtype: %s\npy_modules: [%s]\n' "$EXECUTOR" "$PY_MODULE" > config.yml; fi

USER audiosearch
VOLUME ["/app/models", "/app/workspace"]
EXPOSE 8080
# Inside a container the gateway must listen on all interfaces for -p to reach it; publish the
# port on 127.0.0.1 (as above) unless the service is meant to be reachable from other hosts.
CMD ["python", "app.py", "serve", "--host", "0.0.0.0"]
