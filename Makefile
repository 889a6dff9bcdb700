# Vigil's build. `make help` lists the targets.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -o pipefail -c
GO ?= go
GOARCH ?= $(shell $(GO) env GOARCH)
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/vigilsec/vigil/internal/version.Version=$(VERSION)
PRIV := $(if $(filter 0,$(shell id -u)),VIGIL_REQUIRE_PRIVILEGED=1,)
TEST_TIMEOUT ?= 45m

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets.
	@awk 'BEGIN{FS=":.*## "} /^[a-z-]+:.*## /{printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: deps
deps: ## Install missing build and test dependencies (Debian packages).
	@scripts/deps.sh test

.PHONY: generate
generate: ## Regenerate the bpf2go bindings, the protobuf code and the generated docs.
	@scripts/deps.sh build
	$(GO) generate ./...
	$(GO) test ./cmd/... -run Reference -update
	$(GO) test ./detect -run TestFieldDocs -update

.PHONY: vmlinux
vmlinux: ## Regenerate bpf/vmlinux.h from this machine's BTF (rarely needed).
	bpftool btf dump file /sys/kernel/btf/vmlinux format c > bpf/vmlinux.h

.PHONY: build
build: ## Build bin/sensor and bin/backend (static; GOARCH=arm64 for Graviton).
	CGO_ENABLED=0 GOARCH=$(GOARCH) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ ./cmd/sensor ./cmd/backend

.PHONY: test
test: ## Install what the tests need, then run every tier (unit, privileged, browser, e2e).
	@scripts/deps.sh test
	$(PRIV) $(GO) test -count=1 -p 2 -timeout $(TEST_TIMEOUT) ./...
	$(MAKE) e2e

.PHONY: e2e
e2e: ## Build both binaries and run the attack and benign suites end to end.
	@scripts/deps.sh test
	$(PRIV) $(GO) test -count=1 -tags e2e -timeout 20m -v ./test/e2e/ 2>&1 | scripts/e2e-report.sh

.PHONY: bench
bench: ## Run every benchmark the issues name and print one table of figures.
	@scripts/deps.sh test
	@scripts/bench.sh

.PHONY: lint
lint: ## gofmt, go vet and staticcheck.
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@latest ./...

.PHONY: verify
verify: ## Regenerate everything and fail if any generated file changed.
	$(MAKE) generate
	@git diff --exit-code -- . || { echo "generated code is stale: run make generate and commit"; exit 1; }
	@test -z "$$(git status --porcelain --untracked-files=all -- proto collector bpf)" || { git status --porcelain -- proto collector bpf; echo "make generate created untracked files"; exit 1; }

.PHONY: demo
demo: ## Build, start a backend and a sensor on this host, and show findings live.
	@scripts/deps.sh demo
	@$(MAKE) --no-print-directory build
	@scripts/demo.sh

.PHONY: images
images: ## Build the sensor and backend container images (needs docker or buildah).
	docker build --build-arg VERSION=$(VERSION) -f deploy/docker/Dockerfile.sensor -t vigil-sensor:$(VERSION) .
	docker build --build-arg VERSION=$(VERSION) -f deploy/docker/Dockerfile.backend -t vigil-backend:$(VERSION) .

.PHONY: clean
clean: ## Remove build output and demo data.
	rm -rf bin .bin vigil-data
