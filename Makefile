# jobgate: `make demo` shows it working, `make test` runs every test.
# `make test` is exactly what CI runs (.ci/run).

CARGO ?= cargo
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
DATADIR ?= $(PREFIX)/share/jobgate

.PHONY: all build release test lint unit system install-test demo bench fuzz install uninstall install-sudoers clean

all: build

build:
	$(CARGO) build

release:
	$(CARGO) build --release

# Everything: formatting, lints, unit tests, and the integration tests
# against a real systemd and sudo (those need root; see tests/system).
test: lint unit install-test system

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings
	groff -mdoc -ww -z man/jobgate.8 man/jobgate-tokens.5 man/jobgate-trust.5
	mandoc -T lint -W warning man/jobgate.8 man/jobgate-tokens.5 man/jobgate-trust.5
	shellcheck -s sh contrib/github/jobgate-run
	$(CARGO) check --quiet --manifest-path fuzz/Cargo.toml

unit:
	$(CARGO) test --lib --test cli_docs

# make install into a scratch DESTDIR, then uninstall: nothing may be left.
install-test: release
	sh tests/install.sh

system:
	$(CARGO) test --test system

# Boots a private systemd with example jobs, serves on 127.0.0.1:8000 and
# prints curl commands; Ctrl-C stops everything. Needs root.
demo: build
	sh contrib/demo/demo.sh target/debug/jobgate

# Measurements (never timed tests): prints figures. Needs root.
bench: release
	sh tests/bench/frontends.sh target/release/jobgate
	sh tests/bench/redact.sh target/release/jobgate
	sh tests/bench/follow.sh target/release/jobgate
	sh tests/bench/runs.sh target/release/jobgate

# The binary, the manual pages, and contrib/ (units, sudoers rule, nginx
# examples) as documentation under $(DATADIR). The sudo rule and the units
# are not put in place: read them, then use install-sudoers and systemctl.
install: release
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(DATADIR)
	install -m 0755 target/release/jobgate $(DESTDIR)$(BINDIR)/jobgate
	install -m 0644 man/jobgate.8 $(DESTDIR)$(MANDIR)/man8/jobgate.8
	install -m 0644 man/jobgate-tokens.5 $(DESTDIR)$(MANDIR)/man5/jobgate-tokens.5
	install -m 0644 man/jobgate-trust.5 $(DESTDIR)$(MANDIR)/man5/jobgate-trust.5
	cd contrib && find . -type d -exec install -d $(DESTDIR)$(DATADIR)/{} \;
	cd contrib && find . -type f ! -perm -u+x -exec install -m 0644 {} $(DESTDIR)$(DATADIR)/{} \;
	cd contrib && find . -type f -perm -u+x -exec install -m 0755 {} $(DESTDIR)$(DATADIR)/{} \;

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/jobgate $(DESTDIR)$(MANDIR)/man8/jobgate.8 $(DESTDIR)$(MANDIR)/man5/jobgate-tokens.5 $(DESTDIR)$(MANDIR)/man5/jobgate-trust.5
	rm -rf $(DESTDIR)$(DATADIR)

# The sudo rule, checked by visudo before it is put in place.
install-sudoers:
	visudo -cf contrib/sudoers.d/jobgate
	install -d $(DESTDIR)/etc/sudoers.d
	install -m 0440 contrib/sudoers.d/jobgate $(DESTDIR)/etc/sudoers.d/jobgate

# Each fuzz target for FUZZ_SECONDS (cargo install cargo-fuzz first). The
# targets check properties, not only the absence of panics; see fuzz/.
# RUSTC_BOOTSTRAP lets the stable toolchain take cargo-fuzz's -Z flags.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS = job_name token_file query request http_request journal_export trust_token dbus_message
fuzz:
	mkdir -p fuzz/artifacts
	cd fuzz && for t in $(FUZZ_TARGETS); do \
		RUSTC_BOOTSTRAP=1 cargo fuzz run -O $$t -- -max_total_time=$(FUZZ_SECONDS) >artifacts/$$t.log 2>&1 \
			|| { tail -n 30 artifacts/$$t.log; exit 1; }; \
		echo "$$t: $$(grep -E '^Done' artifacts/$$t.log)"; \
	done

clean:
	$(CARGO) clean
