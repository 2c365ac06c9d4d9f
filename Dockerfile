# rest2mqtt container image.
#
#   docker build -t rest2mqtt .            (or: podman build --format docker -t rest2mqtt .)
#   docker run -d --name rest2mqtt \
#     -v "$PWD/config.yaml:/etc/rest2mqtt/config.yaml:ro" \
#     -v rest2mqtt-state:/var/lib/rest2mqtt rest2mqtt
#
# The config must set `state.path: /var/lib/rest2mqtt/state.db` (the volume);
# the default ./rest2mqtt.db also lands there, as it is the working directory.
# Podman: build with `--format docker` (or BUILDAH_FORMAT=docker), otherwise the
# OCI image format drops HEALTHCHECK. Without registry access, see .ci/container
# for making debian:bookworm-slim locally with debootstrap.

# ---- build stage -----------------------------------------------------------
FROM debian:bookworm-slim AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        gcc libc6-dev pkg-config meson ninja-build \
        libcurl4-openssl-dev libidn2-dev libpaho-mqtt-dev libyajl-dev libyaml-dev \
        libsqlite3-dev libxxhash-dev libmicrohttpd-dev libcmocka-dev libpq-dev \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Only what the build reads (see .dockerignore), so edits elsewhere (README,
# config/, .ci/) keep the compile layer cached.
COPY meson.build meson_options.txt ./
COPY cmd ./cmd
COPY include ./include
COPY src ./src
COPY pollers ./pollers
COPY tests ./tests
COPY bench/meson.build bench/collection_bench.c bench/outbox_bench.c ./bench/
RUN meson setup /build --buildtype=release \
 && ninja -C /build rest2mqtt \
 && strip /build/rest2mqtt \
 && /build/rest2mqtt --version

# ---- runtime stage ---------------------------------------------------------
FROM debian:bookworm-slim
# Shared libraries only (what `ldd rest2mqtt` needs; libmicrohttpd12 serves
# metrics.listen), plus CA certificates for https:// endpoints and mqtts:// brokers.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libcurl4 libpaho-mqtt1.3 libyajl2 libyaml-0-2 libsqlite3-0 libxxhash0 \
        libmicrohttpd12 ca-certificates \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
RUN groupadd --gid 10001 rest2mqtt \
 && useradd --uid 10001 --gid 10001 --home-dir /var/lib/rest2mqtt \
        --no-create-home --shell /usr/sbin/nologin rest2mqtt \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/rest2mqtt \
 && install -d -m 0755 /etc/rest2mqtt
COPY --from=build /build/rest2mqtt /usr/local/bin/rest2mqtt

ENV REST2MQTT_CONFIG=/etc/rest2mqtt/config.yaml
WORKDIR /var/lib/rest2mqtt
VOLUME /var/lib/rest2mqtt
USER 10001:10001
# Graceful stop: finish polls, wait up to shutdown_timeout for broker acks,
# publish "offline". Give it more than shutdown_timeout (docker stop -t 20).
STOPSIGNAL SIGTERM

# Health. The bridge serves GET /healthz only when its config sets
# metrics.listen (200 while connected to the broker, else 503), and a mounted
# config need not, so the default check works without it: the config is valid
# and PID 1 (rest2mqtt) is alive. With `metrics: { listen: 127.0.0.1:9464 }`
# (or 0.0.0.0:9464) in every config you ship, switching to HTTP is replacing
# the CMD line below with this one (bash is in the image; .ci/container tests it):
#   CMD bash -c 'exec 3<>/dev/tcp/127.0.0.1/9464 && printf "GET /healthz HTTP/1.0\r\n\r\n" >&3 && head -n1 <&3 | grep -q " 200 "'
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 \
  CMD rest2mqtt check -c /etc/rest2mqtt/config.yaml >/dev/null && kill -0 1

ENTRYPOINT ["rest2mqtt"]
CMD ["run", "-c", "/etc/rest2mqtt/config.yaml"]
