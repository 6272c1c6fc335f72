# Two entry points for a new user: `make demo` and `make test` (both create .venv and install first).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install --quiet --constraint constraints.txt
# Packages that declare torchvision (no CPU build pairs with torch 2.13) are installed without their declared
# requirements; we only import their torchvision-free modules. clean-fid serves at run time (its "clean" resize).
RUNTIME_NODEPS   := clean-fid==0.1.35
# Parity-only reference libraries go to a folder of their own, off the runtime import path (torchmetrics imports
# torch_fidelity whenever it is importable, and torch_fidelity imports torchvision): only the parity tests
# put it on sys.path, through tests/reference_libs.py.
REFERENCE_LIBS   := $(VENV)/reference-libs
REFERENCE_NODEPS := torch-fidelity==0.4.0 laplace-torch==0.3 \
                    backpack-for-pytorch==1.7.1 curvlinops-for-pytorch==3.0.1 asdfghjkl==0.1a5
FASHION_DIR := /usr/share/datasets/fashion-mnist
# One BLAS/OpenMP thread unless the caller says otherwise: on a small shared CPU spinning threads cost
# far more than they give (runs set torch's own thread count from the config's run.threads).
export OPENBLAS_NUM_THREADS ?= 1
export OMP_NUM_THREADS ?= 1
# glibc's malloc hands tensor-sized blocks back to the kernel after every free (mmap / trim thresholds), so each
# network call page-faults its buffers in again: ~100k minor faults and ~12 % of the CPU time of a sampling pass
# (bench/estimators_bench.py's preset). Keeping freed memory in the process removes that; it changes no number.
export GLIBC_TUNABLES ?= glibc.malloc.mmap_threshold=268435456:glibc.malloc.trim_threshold=1073741824

.PHONY: install test demo reference smoke site bench clean

$(VENV)/.installed: pyproject.toml constraints.txt Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) torch==2.13.0
	$(PIP) -e '.[test]'
	$(PIP) --no-deps $(RUNTIME_NODEPS)
	-$(PY) -m pip uninstall --quiet --yes $(foreach p,$(REFERENCE_NODEPS),$(firstword $(subst ==, ,$(p)))) 2>/dev/null  # older venvs had them on the runtime path
	rm -rf $(REFERENCE_LIBS)
	$(PIP) --no-deps --target $(REFERENCE_LIBS) $(REFERENCE_NODEPS)
	rm -rf $(REFERENCE_LIBS)/tests  # a stray top-level `tests` package shipped by one of them
	@if [ ! -d $(FASHION_DIR) ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  (apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || \
	   (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1)) || \
	  echo "note: could not apt-get dataset-fashion-mnist; the fashion sparsification protocol will say how to get it"; fi
	@if ! command -v chromium >/dev/null && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  (apt-get install -y -qq chromium >/dev/null 2>&1 || \
	   (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null 2>&1)) || \
	  echo "note: could not apt-get chromium; the browser test of the leaderboard site (tests/test_site.py) is skipped"; fi
	touch $@

install: $(VENV)/.installed

test: install
	$(PY) -m pytest tests --durations=25

# `make demo` writes an untracked run folder; the committed reference results live in results/reference/demo
# (3 seeds) and are replaced only on purpose: `make reference`.
DEMO_OUT ?= results/runs/demo
# One process per core this process may run on (override with `make demo DEMO_PROCS=1`): several go through
# torchrun, which shards generation by sample index and gives bit-identical numbers (tests/test_distributed.py;
# each process keeps run.threads intra-op threads). The count no longer drops with the load average: on a busy
# 2-core machine two processes still finish well before one (issue 35: a load of 1 gave the 27-minute version).
DEMO_PROCS ?= $(shell $(PY) -c "import os; print(max(1, len(os.sched_getaffinity(0))))")
demo: install
	@if [ "$(DEMO_PROCS)" -gt 1 ]; then \
	  echo "demo: $(DEMO_PROCS) processes (torchrun)"; \
	  $(PY) -m torch.distributed.run --standalone --nproc-per-node $(DEMO_PROCS) -m \
	    benchmark run --config configs/demo.toml --out $(DEMO_OUT) --overwrite; \
	else \
	  $(PY) -m benchmark run --config configs/demo.toml --out $(DEMO_OUT) --overwrite; \
	fi

# The committed reference: the demo config at a larger size (REFERENCE_SET: N = 600, K = 500, 64 x 4 sparsification
# denoisings, 200 guided samples) replicated over 3 seeds (one run folder per seed, pooled verdicts and the spread
# across seeds beside them), written to results/reference/demo on purpose only; bench/demo_bench.py records its time.
REFERENCE_OUT ?= results/reference/demo
REFERENCE_SET := --set run.num_samples=600 --set run.keep=500 --set run.batch_size=100 \
                 --set protocols.sparsification.num_images=64 --set protocols.sparsification.noise_draws=4 \
                 --set protocols.guidance.num_samples=200
reference: install
	@if [ "$(DEMO_PROCS)" -gt 1 ]; then \
	  $(PY) -m torch.distributed.run --standalone --nproc-per-node $(DEMO_PROCS) -m \
	    benchmark run --config configs/demo.toml $(REFERENCE_SET) --seeds 0,1,2 --out $(REFERENCE_OUT) --overwrite; \
	else \
	  $(PY) -m benchmark run --config configs/demo.toml $(REFERENCE_SET) --seeds 0,1,2 --out $(REFERENCE_OUT) --overwrite; \
	fi

# The static leaderboard site of the smoke run and the demo (open results/leaderboard/index.html).
site: install
	$(PY) -m benchmark leaderboard results/smoke $(DEMO_OUT) --out results/leaderboard

smoke: install
	$(PY) -m benchmark run --config configs/smoke.toml --out results/smoke --overwrite
	$(PY) -m benchmark regress --baseline results/baselines/smoke.csv --run results/smoke

bench: install
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache
