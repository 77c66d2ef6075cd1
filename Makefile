# troupe: the two commands a newcomer needs are `make run` and `make test`.
CARGO ?= cargo

.PHONY: run sandbox test soak check fmt clean

## Start troupe on the local sandbox with the shipped agents.toml (prints the web page address).
run:
	$(CARGO) run --quiet -- --config agents.toml

## Serve only the sandbox (a local Discord) for any bot to connect to.
sandbox:
	$(CARGO) run --quiet -- sandbox

## Run every test (unit + integration, all against the sandbox; no network needed).
test:
	$(CARGO) test --all-targets

## Exactly-once soak: kill -9 troupe at random moments, SOAK_CYCLES times (default 500).
SOAK_CYCLES ?= 500
soak:
	TROUPE_SOAK_CYCLES=$(SOAK_CYCLES) $(CARGO) test --test backlog kill_9 -- --nocapture

## Formatting and lints, as CI checks them.
check:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
