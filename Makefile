# troupe: the two commands a newcomer needs are `make run` and `make test`.
CARGO ?= cargo

.PHONY: run sandbox test soak bench check fmt clean

## Start troupe on the local sandbox with the shipped agents.toml (prints the web page address).
run:
	$(CARGO) run --quiet -- --config agents.toml

## Serve only the sandbox (a local Discord) for any bot to connect to.
sandbox:
	$(CARGO) run --quiet -- sandbox

## Run every test (unit + integration, all against the sandbox). Two tests need Chromium and
## moto: installed when possible; a test whose tool is missing is left out and named at the end,
## never counted as passed (tests/tools.sh; TROUPE_TEST_INSTALL=no installs nothing).
test:
	tests/tools.sh $(CARGO) test --all-targets

## Exactly-once soak: kill -9 troupe at random moments, SOAK_CYCLES times (default 500).
SOAK_CYCLES ?= 500
soak:
	TROUPE_SOAK_CYCLES=$(SOAK_CYCLES) $(CARGO) test --test backlog kill_9 -- --nocapture

## Benchmarks against the sandbox, beside a bare serenity bot (release build; about 5 minutes).
## QUICK=1: reduced sizes, under a minute. BENCH_ARGS: more flags (e.g. --compare FILE).
## Prints a table and writes target/bench/latest-{full,quick}.json. See docs/benchmarks.md.
bench:
	$(CARGO) build --release --bins
	$(CARGO) run --release --quiet --bin troupe-bench -- $(if $(QUICK),--quick) $(BENCH_ARGS)

## Formatting and lints, as CI checks them.
check:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
