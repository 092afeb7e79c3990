# sagin-hil: set-up, run, test.  `make run` and `make test` do everything on a fresh Debian 12 machine.
# Re-running skips what is done: each step leaves a stamp that depends on what it installed from.

PYTHON   ?= python3
VENV     := .venv
BIN      := $(VENV)/bin
SUDO     := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PKGS := libopenjp2-7 libiio0 libiio-utils python3-soapysdr python3-venv
PYTEST   := $(BIN)/python -m pytest

.PHONY: run test test-all bench fuzz soak setup system clean help

# make soak: seconds of streaming, seconds per client before it restarts, where the summary goes
SOAK_S        ?= 3600
SOAK_CLIENT_S ?= 180
SOAK_OUT      ?= runs/soak
# make fuzz: hostile messages per service (>= 100,000 is the acceptance bar)
FUZZ_MESSAGES ?= 100000

help:
	@echo "make run       set up everything, then run the default flowgraph (LEO pass loopback)"
	@echo "make test      set up everything, then run the test suite (slow tests excluded)"
	@echo "make test-all  the test suite including slow statistical and training tests"
	@echo "make bench     install the peers (GNU Radio, Sionna, pyldpc), run every benchmark -> bench-all.json"
	@echo "make fuzz      FUZZ_MESSAGES (100000) hostile messages at every service; none may die or answer wrong"
	@echo "make soak      the emulator service at 2 MS/s for SOAK_S (3600) s, client restarting -> SOAK_OUT"
	@echo "make clean     remove .venv and the set-up stamps"

run: setup
	$(BIN)/sagin-hil run $(ARGS)

test: setup $(VENV)/.stamp-refs
	$(PYTEST) -m "not slow and not fuzz and not soak" $(ARGS)

test-all: setup $(VENV)/.stamp-refs
	$(PYTEST) -m "not fuzz and not soak" $(ARGS)

fuzz: setup
	FUZZ_MESSAGES=$(FUZZ_MESSAGES) $(PYTEST) -m fuzz tests/test_fuzz_*.py -p no:cacheprovider $(ARGS)

soak: setup
	SOAK_S=$(SOAK_S) SOAK_CLIENT_S=$(SOAK_CLIENT_S) SOAK_OUT=$(SOAK_OUT) \
	  $(PYTEST) -m soak tests/test_soak.py -s -p no:cacheprovider $(ARGS)

bench: setup $(VENV)/.stamp-peers
	$(BIN)/sagin-hil bench all --json bench-all.json

setup: $(VENV)/.stamp-install

# System libraries: OpenJPEG for glymur, libiio for pyadi-iio, SoapySDR bindings, venv support.
$(VENV)/.stamp-system:
	@missing=$$(for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:" $$missing; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	@touch $@

$(VENV)/.stamp-install: $(VENV)/.stamp-system pyproject.toml constraints.txt
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[test]"
	@$(MAKE) --no-print-directory soapy-link
	@touch $@

# References the tests check against: Sionna's 5G NR tables and encoder, pyldpc's codes. Not runtime
# dependencies: Sionna goes in --no-deps (keeps our torch), pyldpc's sdist needs --no-build-isolation.
# A reference that fails to install leaves its tests skipped with the reason, not the suite broken.
$(VENV)/.stamp-refs: $(VENV)/.stamp-install
	-$(BIN)/python -m pip install -q -c constraints.txt --no-deps sionna importlib_resources
	-$(BIN)/python -m pip install -q -c constraints.txt --no-build-isolation pyldpc
	@touch $@

# The peers the benchmarks measure against, installed only for `make bench`: the references above and
# GNU Radio 3.10 (Debian's, run by /usr/bin/python3 as a separate process).
$(VENV)/.stamp-peers: $(VENV)/.stamp-refs
	@dpkg -s gnuradio >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends gnuradio; } || \
	  echo "gnuradio could not be installed: the channel bench will skip that peer"
	@touch $@

# Debian's SoapySDR bindings are built for CPython 3.11: link just their two files into the venv
# (all of dist-packages would shadow the venv's numpy with Debian's 1.24).
.PHONY: soapy-link
soapy-link:
	@site=$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'); \
	for f in /usr/lib/python3/dist-packages/SoapySDR.py /usr/lib/python3/dist-packages/_SoapySDR*.so; do \
	  [ -e "$$f" ] && ln -sf "$$f" "$$site/" || true; \
	done

clean:
	rm -rf $(VENV) *.egg-info
