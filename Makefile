# ledgerd — the two commands a newcomer needs are `make run` and `make test`.
# Everything else: `make` (build), `make lint`, `make fmt`, `make test-asan`, `make fuzz`.

JOBS ?= $(shell nproc)
BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 30
PYTEST ?= /usr/bin/python3 -m pytest -q -p no:cacheprovider
C_SOURCES = $(shell find src tests bench -name '*.[ch]' 2>/dev/null)

.PHONY: all build run test test-unit test-system test-asan fuzz lint fmt fmt-check clean deps deps-test \
        bench bench-quick bench-soak bench-obs bench-auth bench-pg

all: build

deps:
	@bash scripts/deps.sh build

deps-test:
	@bash scripts/deps.sh test

$(BUILD)/Makefile: CMakeLists.txt
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null

build: deps $(BUILD)/Makefile
	@cmake --build $(BUILD) -j $(JOBS)

$(ASAN_BUILD)/Makefile: CMakeLists.txt
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DLEDGERD_SANITIZE=ON >/dev/null

asan: deps-test $(ASAN_BUILD)/Makefile
	@cmake --build $(ASAN_BUILD) -j $(JOBS)

# Starts ledgerd on the embedded SQLite default (./var/ledgerd.db), applying migrations first; in
# the dev environment it also makes and prints an API key to try it with (scripts/run.sh).
run: build
	@bash scripts/run.sh ./$(BUILD)/ledgerd

# Suites that need PostgreSQL get a throwaway cluster (scripts/with-pg.sh); the system suite
# runs twice, on SQLite and on PostgreSQL (LEDGERD_TEST_DB=postgres).
test-unit: build
	@bash scripts/with-pg.sh ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

test-system: build
	@LEDGERD_BIN=$(CURDIR)/$(BUILD)/ledgerd bash scripts/with-pg.sh sh -c \
	  '$(PYTEST) tests/system tests/docs && LEDGERD_TEST_DB=postgres $(PYTEST) tests/system'

# The whole suite again on the AddressSanitizer + UndefinedBehaviorSanitizer build.
test-asan: asan
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  LEDGERD_BIN=$(CURDIR)/$(ASAN_BUILD)/ledgerd LEDGERD_TEST_SLOW=1 bash scripts/with-pg.sh sh -c \
	  'ctest --test-dir $(ASAN_BUILD) --output-on-failure -j $(JOBS) && $(PYTEST) tests/system && \
	   LEDGERD_TEST_DB=postgres $(PYTEST) tests/system'

# libFuzzer targets, each run for FUZZ_SECONDS on the seed corpus in tests/fuzz/corpus.
fuzz: deps-test
	@cmake -S . -B $(FUZZ_BUILD) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
	  -DLEDGERD_FUZZ=ON >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzzers
	@bash scripts/fuzz.sh $(FUZZ_BUILD)/fuzz $(FUZZ_SECONDS)

test: deps-test fmt-check build test-unit test-system test-asan fuzz lint
	@echo "make test: all suites passed"

# Benchmarks against references measured in the same run (bench/README.md); results are
# appended to bench/RESULTS.md. They build their own Release binary.
bench:
	@bash bench/run.sh full && bash bench/pg.sh full

bench-quick:
	@bash bench/run.sh quick

# Five minutes of scenario 2's load while RSS is sampled: memory must stay flat (bench/SOAK.md).
bench-soak:
	@bash bench/soak.sh

# Access logs and 100 % tracing off vs on, same binary, interleaved: cost <= 10 % (bench/README.md).
bench-obs:
	@bash bench/obs.sh full

# Authentication off vs API key vs JWT, same binary, interleaved: the cost per request (bench/README.md).
bench-auth:
	@bash bench/auth.sh full

# ledgerd on PostgreSQL vs the same ledger as SQL functions driven by pgbench, on one cluster.
bench-pg:
	@bash bench/pg.sh full

fmt:
	@clang-format -i $(C_SOURCES)

fmt-check:
	@clang-format --dry-run -Werror $(C_SOURCES)

lint: deps-test fmt-check $(BUILD)/Makefile
	@bash scripts/lint.sh $(BUILD)

clean:
	@rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
