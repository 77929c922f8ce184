# syntax=docker/dockerfile:1
# Headroom server image (docs/deploy.md). BuildKit (Docker 23+) builds only
# the stages the chosen VARIANT needs.
#
#   docker build -t headroom .                                   # CPU (Debian 12)
#   docker build -t headroom:cuda --build-arg VARIANT=cuda .     # NVIDIA CUDA
#   docker run -p 50051:50051 -p 9090:9090 headroom              # the demo model
#   docker run -v /data/models:/models:ro -p 50051:50051 -p 9090:9090 headroom \
#       --model /models/my-model.gguf                            # another model
#
# The build stages call the scripts CI runs (scripts/install-deps.sh,
# scripts/build.sh) and deploy/docker/bundle.sh, which CI also runs and whose
# output CI serves from (tests/deploy): what the image runs is what CI tested.
# The runtime stage holds the two binaries, their libraries and the models,
# runs as an unprivileged user, and drains on SIGTERM (headroom-server is
# PID 1, exec form): `docker stop -t 40` gives running requests the server's
# --drain_timeout_s (30 s) to finish.

# cpu | cuda
ARG VARIANT=cpu
ARG DEBIAN_RELEASE=12
# nvidia/cuda tags: CUDA_VERSION-{devel,runtime}-CUDA_OS. Ubuntu 24.04 has
# the Debian 12 package set install-deps.sh names (Abseil 20220623, gRPC 1.51).
ARG CUDA_VERSION=12.6.3
ARG CUDA_OS=ubuntu24.04

# --- Base images, one pair per VARIANT (build: compilers; runtime: slim) ---
FROM debian:${DEBIAN_RELEASE} AS build-base-cpu
FROM nvidia/cuda:${CUDA_VERSION}-devel-${CUDA_OS} AS build-base-cuda
FROM debian:${DEBIAN_RELEASE}-slim AS runtime-base-cpu
FROM nvidia/cuda:${CUDA_VERSION}-runtime-${CUDA_OS} AS runtime-base-cuda

# --- deps: the packages CI installs (a layer of its own, cached across edits) ---
FROM build-base-${VARIANT} AS deps
ENV DEBIAN_FRONTEND=noninteractive
WORKDIR /src
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN ./scripts/install-deps.sh && rm -rf /var/lib/apt/lists/*

# --- build: the server and the client, with CI's build script ---
FROM deps AS build
# CUDA variant only: the GPU architectures nvcc compiles for.
ARG CUDA_ARCHITECTURES="80;90"
ARG JOBS=""
COPY . .
# ccache (found by CMake) keeps its cache across image builds.
RUN --mount=type=cache,target=/root/.cache/ccache \
    JOBS="${JOBS:-$(nproc)}" TARGETS="headroom-server headroom" \
        ./scripts/build.sh "-DCMAKE_CUDA_ARCHITECTURES=${CUDA_ARCHITECTURES}" \
 && ./deploy/docker/bundle.sh /opt/headroom build/server/headroom-server build/client/headroom

# --- runtime ---
FROM runtime-base-${VARIANT} AS runtime
ARG UID=10001
RUN groupadd --system --gid "${UID}" headroom \
 && useradd --system --uid "${UID}" --gid "${UID}" --home-dir /opt/headroom --no-create-home \
        --shell /usr/sbin/nologin headroom \
 && mkdir -p /models && chown "${UID}:${UID}" /models
COPY --from=build /opt/headroom /opt/headroom
# The demo model (models/demo.gguf) ships inside; other models mount on /models.
COPY models/ /opt/headroom/models/
RUN echo /opt/headroom/lib > /etc/ld.so.conf.d/headroom.conf && ldconfig \
 && ! ldd /opt/headroom/bin/headroom-server /opt/headroom/bin/headroom \
        | grep -v -E 'libcuda\.so|libnvidia' | grep 'not found'
ENV PATH=/opt/headroom/bin:${PATH}
WORKDIR /opt/headroom
VOLUME ["/models"]
# gRPC (API, health, reflection) and Prometheus /metrics: the server's defaults.
EXPOSE 50051 9090
USER ${UID}:${UID}
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 \
    CMD ["headroom", "health", "--server", "127.0.0.1:50051", "--timeout_s", "3"]
ENTRYPOINT ["headroom-server"]
CMD ["--model", "/opt/headroom/models/demo.gguf", "--grpc_address", "0.0.0.0:50051", "--metrics_address", "0.0.0.0:9090"]
