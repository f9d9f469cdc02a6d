# streamgate in a container: Debian 12, built from this checkout, run as a non-root user.
#   docker build -t streamgate .          (optionally --build-arg STREAMGATE_COMMIT=$(git rev-parse --short=12 HEAD))
#   docker run -p 4000:4000 -e STREAMGATE_JWT_SECRET=... -e STREAMGATE_API_KEY=... streamgate
# Every flag is also a STREAMGATE_* variable (docs/configuration.md). Not built in CI: the build
# machines have no access to Docker Hub.

FROM debian:12 AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      g++ cmake ninja-build pkg-config \
      libboost1.81-dev libboost-json1.81-dev libssl-dev libcli11-dev libhiredis-dev liburing-dev \
      libtomlplusplus-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
ARG STREAMGATE_COMMIT=""
RUN cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
      -DSTREAMGATE_COMMIT="${STREAMGATE_COMMIT}" \
 && cmake --build build --target streamgate \
 && strip build/streamgate

FROM debian:12-slim
# The runtime halves of the build's libraries, and curl for the health check.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libboost-json1.81.0 libssl3 libhiredis0.14 liburing2 libtomlplusplus3 curl ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --user-group --uid 10001 --home-dir /var/lib/streamgate --create-home \
      --shell /usr/sbin/nologin streamgate
COPY --from=build /src/build/streamgate /usr/bin/streamgate
USER streamgate
ENV STREAMGATE_LISTEN=0.0.0.0:4000 \
    STREAMGATE_UPLOAD_DIR=/var/lib/streamgate/uploads
VOLUME /var/lib/streamgate
EXPOSE 4000
# Liveness only: /healthz stays 200 through a drain (docs/scaling.md). Change the port here too
# if STREAMGATE_LISTEN changes it.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD curl -fsS -o /dev/null http://127.0.0.1:4000/healthz || exit 1
# SIGTERM starts the drain (10 s + 4 s grace by default): give `docker stop` --time 20 or more.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/streamgate"]
