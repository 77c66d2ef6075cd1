# troupe: the two commands a newcomer needs are `make run` and `make test`.
CARGO ?= cargo

.PHONY: run sandbox test soak chaos scale-test bench check fmt clean

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

## Reliability suite ("never drop a message"): kill -9, gateway, REST, LLM-outage, breaker and
## overload faults under steady traffic against the real binary (release build). Prints answered,
## given up, lost, duplicate and spurious counts per scenario and fails unless the last three are
## 0. About half an hour; CHAOS_CYCLES kill -9 cycles in all (default 1000). More knobs
## (CHAOS_SCENARIOS, CHAOS_OUTAGES, ...): docs/reliability.md.
## Scale test: one sandbox, 3 cells, 30 agents under steady traffic; each cell restarted, one
## killed with SIGKILL, a stray duplicate of a cell started. Fails on a lost or duplicate reply,
## or a bot held by two sessions outside the stray's window (docs/scaling.md).
scale-test:
	$(CARGO) test --test scale -- --ignored --nocapture

CHAOS_CYCLES ?= 1000
chaos:
	CHAOS_CYCLES=$(CHAOS_CYCLES) $(CARGO) test --release --test chaos -- --ignored --nocapture --test-threads=1

## Benchmarks against the sandbox, beside a bare serenity bot (release build; about 5 minutes).
## QUICK=1: reduced sizes, under a minute. BENCH_ARGS: more flags (e.g. --compare FILE).
## Prints a table and writes target/bench/latest-{full,quick}.json. See docs/benchmarks.md.
## troupe is built on its own: in one build with the harness, cargo would give it the features
## the harness's bots ask of serenity (its cache), which troupe does without.
bench:
	$(CARGO) build --release -p troupe --bins
	$(CARGO) run --release --quiet -p troupe-bench --bin troupe-bench -- $(if $(QUICK),--quick) $(BENCH_ARGS)

## Formatting and lints, as CI checks them.
check:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
