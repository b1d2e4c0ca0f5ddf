# jobgate: `make demo` shows it working, `make test` runs every test.
# `make test` is exactly what CI runs (.ci/run).

CARGO ?= cargo

.PHONY: all build release test lint unit system demo bench clean

all: build

build:
	$(CARGO) build

release:
	$(CARGO) build --release

# Everything: formatting, lints, unit tests, and the integration tests
# against a real systemd and sudo (those need root; see tests/system).
test: lint unit system

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings
	groff -mdoc -ww -z man/jobgate.8

unit:
	$(CARGO) test --bin jobgate

system:
	$(CARGO) test --test system

# Boots a private systemd with example jobs, serves on 127.0.0.1:8000 and
# prints curl commands; Ctrl-C stops everything. Needs root.
demo: build
	sh contrib/demo/demo.sh target/debug/jobgate

# Measurements (never timed tests): prints figures. Needs root.
bench: release
	sh tests/bench/redact.sh target/release/jobgate

clean:
	$(CARGO) clean
