# ElixirScope build. `make demo` sets up and runs the main job; `make test` runs every test.
SHELL := /bin/bash
# Evaluated once, on first use: an up-to-date `make nif` (run by every `mix compile`) starts no erl.
ERTS_INCLUDE = $(eval ERTS_INCLUDE := $(shell erl -noshell -eval 'io:format("~s/erts-~s/include", [code:root_dir(), erlang:system_info(version)]), halt().' 2>/dev/null))$(ERTS_INCLUDE)

CC ?= gcc
WARN := -Wall -Wextra -Werror
BASE_CFLAGS = -std=gnu11 -fPIC $(WARN) -Iinclude -I$(ERTS_INCLUDE) -D_GNU_SOURCE
CFLAGS_OPT := -O2 -g
LIBS := -lcurl -lcjson -lz -lpthread -lm -ldl

NIF_SO := priv/elixir_scope_nif.so
ALL_SRC := $(sort $(wildcard c_src/*.c))
PURE_SRC := $(filter-out c_src/nif%.c,$(ALL_SRC))
HEADERS := $(wildcard include/elixir_scope/*.h) $(wildcard c_src/*.h)
C_TESTS := $(sort $(wildcard test/c/test_*.c))
C_TEST_BINS := $(patsubst test/c/%.c,build/c_tests/%,$(C_TESTS))
C_TEST_BINS_ASAN := $(patsubst test/c/%.c,build/c_tests_asan/%,$(C_TESTS))
SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

DEBIAN_PKGS := erlang-dev zlib1g-dev libcjson-dev libcmocka-dev libcurl4-openssl-dev erlang-dialyzer erlang-inets erlang-ssl erlang-public-key erlang-crypto chromium

.PHONY: all setup nif test test-c test-asan test-fuzz mix-test demo-test bench demo demo-cinema demo-cluster clean dialyzer

all: nif

# Installs the Debian packages that are missing (as root), or prints the command to run.
setup:
	@missing=""; for p in $(DEBIAN_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then echo "setup: all Debian packages present"; \
	elif [ "$$(id -u)" = "0" ]; then echo "setup: installing$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null && echo "setup: done"; \
	else echo "setup: missing Debian packages:$$missing"; echo "run: sudo apt-get update && sudo apt-get install -y$$missing"; exit 1; fi

nif: $(NIF_SO)

# Hidden visibility: the library exports nif_init only, so its own calls between files (the event
# path: codec, clock, ring) are direct, not through the PLT; link-time optimisation inlines them.
NIF_CFLAGS := -fvisibility=hidden -flto=auto

$(NIF_SO): $(ALL_SRC) $(HEADERS) Makefile
	@mkdir -p priv
	$(CC) $(BASE_CFLAGS) $(CFLAGS_OPT) $(NIF_CFLAGS) -shared -o $@ $(ALL_SRC) $(LIBS)

build/c_tests/%: test/c/%.c $(PURE_SRC) $(HEADERS)
	@mkdir -p build/c_tests
	$(CC) $(BASE_CFLAGS) -O1 -g -o $@ $< $(PURE_SRC) -lcmocka $(LIBS)

build/c_tests_asan/%: test/c/%.c $(PURE_SRC) $(HEADERS)
	@mkdir -p build/c_tests_asan
	$(CC) $(BASE_CFLAGS) -O1 -g $(SAN) -o $@ $< $(PURE_SRC) -lcmocka $(LIBS)

test-c: $(C_TEST_BINS)
	@set -e; for t in $(C_TEST_BINS); do echo "== $$t"; ./$$t; done

test-asan: $(C_TEST_BINS_ASAN)
	@set -e; for t in $(C_TEST_BINS_ASAN); do echo "== $$t (asan+ubsan)"; \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ./$$t; done

mix-test: nif
	mix test

# The fuzzer: every NIF with generated arguments and 10,000 mutated recordings, in child VMs
# (about 1 min on 2 cores, at most 5). `make test-fuzz SEED=N` picks another run.
SEED ?= 1
test-fuzz: nif
	MIX_ENV=test mix run --no-start test/fuzz/run.exs --seed $(SEED)

# The demo application's own tests, compiled instrumented at :full.
demo-test: nif
	./examples/test_demo.sh

test: nif test-c mix-test demo-test

build/c_core_bench: bench/c_core_bench.c $(PURE_SRC) $(HEADERS)
	@mkdir -p build
	$(CC) $(BASE_CFLAGS) -O2 -g -o $@ bench/c_core_bench.c $(PURE_SRC) $(LIBS)

bench: nif build/c_core_bench
	MIX_ENV=prod mix run bench/run.exs

demo: setup nif
	./examples/run_demo.sh

# The demo over three local nodes (ElixirScope.Cluster): the merged timeline; saves _build/cluster.esrec
demo-cluster: setup nif
	mix run examples/cluster/run.exs

# A screenshot of the execution cinema on the demo recording: _build/cinema.png
demo-cinema: setup nif
	./examples/cinema_screenshot.sh

# Dialyzer over the compiled project (erlang-dialyzer; the PLT is built once, ~3 minutes).
ELIXIR_EBINS = $(shell elixir -e 'for a <- [:elixir, :logger, :mix], do: IO.puts(:code.lib_dir(a) ++ ~c"/ebin")')
PLT := build/elixir_scope.plt
$(PLT):
	@mkdir -p build
	dialyzer $(addprefix -pa ,$(ELIXIR_EBINS)) --build_plt --output_plt $@ --apps erts kernel stdlib compiler crypto public_key inets ssl $(ELIXIR_EBINS)

dialyzer: nif $(PLT)
	mix compile
	dialyzer $(addprefix -pa ,$(ELIXIR_EBINS)) --plt $(PLT) --no_check_plt _build/dev/lib/elixir_scope/ebin

clean:
	rm -rf build priv/elixir_scope_nif.so _build/bench
