# emaillistener — see README.md.
GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
# An execution count, not a duration: Go 1.26's fuzz coordinator can fail a
# duration-limited run with a spurious "context deadline exceeded" at the
# deadline (golang/go#75804, fixed in Go 1.27).
FUZZTIME  ?= 20000x

.PHONY: run build image compose-check test test-deps unit vet fuzz bench clean

## run: start the service on :10000 with the embedded memory store (no Redis needed)
run:
	$(GO) run ./cmd/emaillistener serve

## build: build bin/emaillistener
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/emaillistener ./cmd/emaillistener

## image: build the container image without a Docker engine (OCI layout in bin/image,
## `docker load -i bin/emaillistener.tar`); IMAGE_ARCH=amd64,arm64 for several platforms
IMAGE_ARCH ?= $(shell $(GO) env GOARCH)
image:
	$(GO) run ./cmd/elimage -out bin/image -tar bin/emaillistener.tar -version '$(VERSION)' -arch '$(IMAGE_ARCH)'

## compose-check: check compose.yaml and its demo files (no Docker needed), and the image build
compose-check:
	$(GO) test -count=1 ./test/compose/ ./test/image/

## test: install the real servers tests need (Dovecot, Redis via apt), then run every test
test: test-deps vet
	$(GO) test -race -shuffle=on -timeout 20m ./...
	$(MAKE) fuzz

test-deps:
	bash scripts/install-test-deps.sh

vet:
	$(GO) vet ./...
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi

## fuzz: a short fuzzing budget per parser (FUZZTIME executions each)
fuzz:
	$(GO) test -run='^$$' -fuzz='^FuzzParse$$' -fuzztime=$(FUZZTIME) ./internal/mime/
	$(GO) test -run='^$$' -fuzz='^FuzzDecode$$' -fuzztime=$(FUZZTIME) ./internal/creatio/
	$(GO) test -run='^$$' -fuzz='^FuzzBuild$$' -fuzztime=$(FUZZTIME) ./internal/sender/

## bench: Go micro-benchmarks of the hot paths
bench:
	$(GO) test -run='^$$' -bench=. -benchmem ./internal/...

clean:
	rm -rf bin
