# Thin aliases: the scripts are the real commands (README), so CI and make run the same thing.
.PHONY: test test-all lint demo bench lock

test:        ## ruff, mypy and the whole test suite in the pinned .venv (extra args: ARGS="-x -k hook")
	scripts/test.sh $(ARGS)

test-all:    ## as test, plus the unit tests under Airflow 3.1 and 3.2 (what CI runs)
	scripts/test.sh --with-older-airflow $(ARGS)

lint:        ## ruff check, ruff format --check and mypy only
	scripts/test.sh --lint-only

demo:        ## Canvas simulator -> DAGs -> files in .demo/
	scripts/demo.sh $(ARGS)

bench:       ## the benchmarks behind the README's performance claims
	scripts/bench.sh $(ARGS)

lock:        ## re-pin requirements/*.lock after editing requirements/dev.in or pyproject deps
	requirements/compile.sh $(ARGS)
