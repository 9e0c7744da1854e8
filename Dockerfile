# videoforge: one image for every role (`serve --role api|worker|all`).

# hls.js for the watch page and Uppy for the upload page, from the npm registry as
# package-lock.json pins them.
FROM node:20-slim AS web
WORKDIR /web
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --loglevel=error

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    VIDEOFORGE_SERVER_HOST=0.0.0.0 \
    VIDEOFORGE_SERVER_DATA_DIR=/data

RUN useradd --create-home --uid 10001 videoforge \
    && mkdir -p /data && chown videoforge:videoforge /data

WORKDIR /app
COPY pyproject.toml README.md schema.sql ./
COPY videoforge ./videoforge
COPY --from=web /web/node_modules/hls.js/dist/hls.min.js ./videoforge/web/static/vendor/
COPY --from=web /web/node_modules/uppy/dist/uppy.min.mjs ./videoforge/web/static/vendor/
RUN pip install .

USER videoforge
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s \
    CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/api/health', timeout=4).status != 200)"
ENTRYPOINT ["videoforge"]
CMD ["serve", "--role", "all"]
