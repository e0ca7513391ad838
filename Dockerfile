# Static binary on distroless: no shell, non-root (UID 65532), read-only root
# filesystem friendly. Build: docker build --build-arg VERSION=$(git describe --tags --always) -t emaillistener .
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/emaillistener ./cmd/emaillistener

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/emaillistener /usr/local/bin/emaillistener
EXPOSE 10000
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/emaillistener"]
CMD ["serve"]
