# syntax=docker/dockerfile:1
#
# One image for every service: `gps <service>` picks what runs
# (k8s/base/*.yaml pass the service as the first argument).
#
#   docker build -t ghcr.io/gpsscan/gps:dev .
#   docker buildx build --platform linux/amd64,linux/arm64 -t ghcr.io/gpsscan/gps:0.1.0 --push .

FROM --platform=$BUILDPLATFORM golang:1.26 AS build
ARG TARGETOS
ARG TARGETARCH
# Build with the image's Go; never download another toolchain.
ENV GOTOOLCHAIN=local
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
# Static (no cgo): the runtime image has no libc. Cross-compiles for
# buildx's target platform on the build host's native Go.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags="-s -w" -o /gps ./cmd/gps

# distroless: no shell, no package manager; CA certificates and tzdata only.
# The nonroot tag runs as uid/gid 65532, which the manifests set explicitly
# (the prober overrides it with root and NET_RAW only, see k8s/base/prober.yaml).
FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.title="gps" \
      org.opencontainers.image.description="GPS predictive Internet scanning: seeder, modeler, predictor, prober" \
      org.opencontainers.image.source="https://github.com/gpsscan/gps"
COPY --from=build /gps /gps
USER 65532:65532
# Telemetry: /metrics, /healthz, /readyz (pkg/telemetry).
EXPOSE 9090
ENTRYPOINT ["/gps"]
