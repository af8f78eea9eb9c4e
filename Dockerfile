# Sluice's container image: the release build of the gateway, its plugin host,
# the first-party plugins and sluice-kb, with the demo model, the demo shop's
# knowledge base and orders, the chat widget and a default configuration
# baked in, so that
#
#   docker run -p 8080:8080 IMAGE
#
# answers on the embedded default (the demo model on the CPU) at
# http://localhost:8080/. docs/operations.md has the rest: configuration by
# SLUICE_* environment variables or a mounted file, plugins from a mounted
# directory, the Redis store, draining on SIGTERM.
#
# Debian 12 in both stages; BASE names the base image (a local one made with
# mmdebstrap in the tests: deploy/docker/verify.sh). A ccache folder mounted
# at /ccache during the build (podman build -v DIR:/ccache) is used when there
# is one.
ARG BASE=debian:bookworm-slim

FROM ${BASE} AS build
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update -q \
 && apt-get install -y -q --no-install-recommends \
      build-essential cmake ninja-build pkg-config ccache ca-certificates python3 npm \
      libboost1.81-dev libboost-system1.81-dev libboost-url1.81-dev libcurl4-openssl-dev libssl-dev \
      libjwt-dev libsqlite3-dev libicu-dev libsimdjson-dev libtomlplusplus-dev libspdlog-dev libfmt-dev \
      libcli11-dev nlohmann-json3-dev libhiredis-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN if [ -d /ccache ]; then export CCACHE_DIR=/ccache; else export CCACHE_DISABLE=1; fi \
 && cmake --preset release -DSLUICE_BUILD_TESTS=OFF -DSLUICE_BUILD_BENCH=OFF >/dev/null \
 && cmake --build --preset release \
      --target sluice sluice-plugin-host sluice-kb order_lookup knowledge_base moderation \
 && mkdir -p /out/bin /out/plugins /out/demo \
 && cp build/release/bin/sluice build/release/bin/sluice-plugin-host build/release/bin/sluice-kb /out/bin/ \
 && cp build/release/plugins/*.so /out/plugins/ \
 && strip --strip-debug /out/bin/* /out/plugins/*.so \
 && python3 tools/make_demo_orders.py /out/demo/orders.sqlite >/dev/null
# The widget's Markdown parser and sanitizer come from npm; web-demo/vendor
# links into node_modules, copied here as plain files. Behind a proxy that
# re-signs TLS, mount its CA bundle for this step:
# podman build -v /etc/ssl/certs/ca-certificates.crt:/etc/sluice-build-ca.crt:ro
RUN if [ -f /etc/sluice-build-ca.crt ]; then export NODE_EXTRA_CA_CERTS=/etc/sluice-build-ca.crt; fi \
 && npm ci --prefix web-demo --no-audit --no-fund --loglevel=error \
 && mkdir -p /out/web && cp -rL web-demo/. /out/web/ \
 && rm -rf /out/web/node_modules /out/web/screenshots /out/web/package.json /out/web/package-lock.json

FROM ${BASE}
ARG DEBIAN_FRONTEND=noninteractive
# Only what the binaries link (ldd) and curl for the health check.
RUN apt-get update -q \
 && apt-get install -y -q --no-install-recommends \
      ca-certificates curl libcurl4 libssl3 libjwt0 libhiredis0.14 libtomlplusplus3 libspdlog1.10 libfmt9 \
      libsimdjson14 libicu72 libsqlite3-0 \
 && apt-get clean && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/sluice --create-home \
      --shell /usr/sbin/nologin sluice \
 && mkdir -p /usr/local/lib/sluice/plugins.d
COPY --from=build /out/bin/ /usr/local/bin/
COPY --from=build /out/plugins/ /usr/local/lib/sluice/plugins/
COPY --from=build /out/web/ /usr/local/share/sluice/web/
COPY --from=build /out/demo/ /usr/local/share/sluice/demo/
COPY models/sluice-demo.gguf /usr/local/share/sluice/models/
COPY kb/demo-shop/ /usr/local/share/sluice/kb/demo-shop/
COPY deploy/docker/sluice.toml /etc/sluice/sluice.toml
USER 10001:10001
WORKDIR /var/lib/sluice
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD curl -fsS -o /dev/null http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["/usr/local/bin/sluice"]
CMD ["--config", "/etc/sluice/sluice.toml"]
