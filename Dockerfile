# Static binary on distroless: no shell, non-root (UID 65532), read-only root
# filesystem friendly. Build: docker build --build-arg VERSION=$(git describe --tags --always) \
#   --build-arg REVISION=$(git rev-parse HEAD) --build-arg CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ) -t emaillistener .
# Without a Docker engine: make image (cmd/elimage) builds the same image FROM scratch.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/emaillistener ./cmd/emaillistener

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
ARG REVISION=
ARG CREATED=
# The same labels as the engine-free build (go run ./cmd/elimage, make image).
LABEL org.opencontainers.image.title="emaillistener" \
      org.opencontainers.image.description="Open-source drop-in replacement for Creatio's Email Listener microservice" \
      org.opencontainers.image.source="https://github.com/emaillistener/emaillistener" \
      org.opencontainers.image.url="https://github.com/emaillistener/emaillistener" \
      org.opencontainers.image.documentation="https://github.com/emaillistener/emaillistener#readme" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"
COPY --from=build /out/emaillistener /usr/local/bin/emaillistener
EXPOSE 10000
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/emaillistener"]
CMD ["serve"]
