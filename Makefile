# jobgate: `make demo` shows it working, `make test` runs every test.
# `make test` is exactly what CI runs (.ci/run).

CARGO ?= cargo
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
DATADIR ?= $(PREFIX)/share/jobgate

.PHONY: all build release test lint unit system install-test package-test deb demo bench fuzz install uninstall install-sudoers clean

all: build

build:
	$(CARGO) build

release:
	$(CARGO) build --release

# Everything: formatting, lints, unit tests, and the integration tests
# against a real systemd and sudo (those need root; see tests/system).
test: lint unit install-test package-test system

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings
	groff -mdoc -ww -z man/jobgate.8 man/jobgate-tokens.5 man/jobgate-trust.5
	mandoc -T lint -W warning man/jobgate.8 man/jobgate-tokens.5 man/jobgate-trust.5
	shellcheck -s sh contrib/github/jobgate-run
	shellcheck -x -s sh tests/sandbox/jwks-unit.sh
	systemd-analyze verify --man=no contrib/systemd/jobgate-jwks@.service contrib/systemd/jobgate-jwks@.timer
	sh tests/verify-jobs.sh
	shellcheck -x -s sh tests/package.sh tests/verify-jobs.sh tests/sandbox/boot.sh tests/sandbox/lib.sh debian/jobgate.prerm debian/jobgate.postrm
	shellcheck -s bash contrib/completions/jobgate.bash
	$(CARGO) check --quiet --manifest-path fuzz/Cargo.toml

unit:
	$(CARGO) test --lib --test cli_docs --test journal_files

# make install into a scratch DESTDIR, then uninstall: nothing may be left.
install-test: release
	sh tests/install.sh

# The Debian package as an operator meets it: lintian, then install, the
# README's steps, purge, upgrade from a lower version, in a sandbox on an
# overlay of / that leaves the host as it was (tests/package.sh). Root.
package-test: deb
	sh tests/package.sh

system:
	$(CARGO) test --test system
	sh tests/sandbox/jwks-unit.sh target/debug/jobgate tests/data/jwks-rsa2048.json

# The Debian package: jobgate_VERSION_ARCH.deb here (replacing any older
# one), from debian/ with dpkg-buildpackage and debhelper (apt-get install
# debhelper; cargo from rustup). Its .buildinfo and .changes: $(DEB_DIR).
DEB_DIR = target/deb
deb:
	@command -v dh >/dev/null || { echo "make deb needs debhelper: apt-get install debhelper" >&2; exit 1; }
	rm -rf $(DEB_DIR) jobgate_*.deb
	mkdir -p $(DEB_DIR)
	v=$$(dpkg-parsechangelog -S Version) && a=$$(dpkg-architecture -q DEB_HOST_ARCH) && \
	dpkg-buildpackage --build=binary --no-sign --post-clean --rules-file='debian/rules DEB_DIR=$(DEB_DIR)' \
		--buildinfo-option=-u$(DEB_DIR) --buildinfo-file=$(DEB_DIR)/jobgate_$${v}_$$a.buildinfo \
		--changes-option=-u$(DEB_DIR) --changes-file=$(DEB_DIR)/jobgate_$${v}_$$a.changes && \
	cp $(DEB_DIR)/jobgate_$${v}_$$a.deb . && echo "make deb: ./jobgate_$${v}_$$a.deb"

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
# examples) as documentation under $(DATADIR), the units and the CGI
# wrapper pointed at $(BINDIR)/jobgate. The sudo rule and the units are not
# put in place: read them, then use install-sudoers and systemctl. On
# Debian, `make deb` and the package are simpler (README).
install: release
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(DATADIR)
	install -m 0755 target/release/jobgate $(DESTDIR)$(BINDIR)/jobgate
	install -m 0644 man/jobgate.8 $(DESTDIR)$(MANDIR)/man8/jobgate.8
	install -m 0644 man/jobgate-tokens.5 $(DESTDIR)$(MANDIR)/man5/jobgate-tokens.5
	install -m 0644 man/jobgate-trust.5 $(DESTDIR)$(MANDIR)/man5/jobgate-trust.5
	cd contrib && find . -type d -exec install -d $(DESTDIR)$(DATADIR)/{} \;
	cd contrib && find . -type f ! -perm -u+x -exec install -m 0644 {} $(DESTDIR)$(DATADIR)/{} \;
	cd contrib && find . -type f -perm -u+x -exec install -m 0755 {} $(DESTDIR)$(DATADIR)/{} \;
	sed -i 's|/usr/bin/jobgate|$(BINDIR)/jobgate|' $(DESTDIR)$(DATADIR)/systemd/jobgate*.service $(DESTDIR)$(DATADIR)/cgi/jobgate.cgi

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
# The corpus (fuzz/corpus/TARGET) is not kept in git; a target's seeds
# are (fuzz/seeds/TARGET, read too): journal_file's are small real journal
# files, made by fuzz/seeds/journal_file.py, that no fuzzer finds alone.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS = job_name token_file query request http_request journal_export trust_token dbus_message journal_file
fuzz:
	mkdir -p fuzz/artifacts
	cd fuzz && for t in $(FUZZ_TARGETS); do \
		mkdir -p corpus/$$t; seeds=; if [ -d seeds/$$t ]; then seeds=seeds/$$t; fi; \
		RUSTC_BOOTSTRAP=1 cargo fuzz run -O $$t corpus/$$t $$seeds -- -max_total_time=$(FUZZ_SECONDS) >artifacts/$$t.log 2>&1 \
			|| { tail -n 30 artifacts/$$t.log; exit 1; }; \
		echo "$$t: $$(grep -E '^Done' artifacts/$$t.log)"; \
	done

clean:
	$(CARGO) clean
	rm -f jobgate_*.deb
