# troupe: the two commands a newcomer needs are `make run` and `make test`.
CARGO ?= cargo

.PHONY: run sandbox test check fmt clean

## Start troupe on the local sandbox with the shipped agents.toml (prints the web page address).
run:
	$(CARGO) run --quiet -- --config agents.toml

## Serve only the sandbox (a local Discord) for any bot to connect to.
sandbox:
	$(CARGO) run --quiet -- sandbox

## Run every test (unit + integration, all against the sandbox; no network needed).
test:
	$(CARGO) test --all-targets

## Formatting and lints, as CI checks them.
check:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
