# minigpt - build, demo and test.
#   make            build ./minigpt (CPU backend)
#   make demo       install missing packages, build, train the default model, generate
#   make test       install missing packages, build, run the whole test suite
#   make asan       build the sanitizer (ASan+UBSan) variant under build-asan/
#   make install    copy minigpt (and minigpt_cuda.so beside it) to $(DESTDIR)$(PREFIX)/bin
#   make readme-flags  rewrite README.md's flag tables from the option table
CC      ?= gcc
VERSION ?= 0.1.0
PREFIX  ?= /usr/local
DESTDIR ?=
.SECONDEXPANSION:
BUILD   ?= build
OPT     ?= -O3 -march=native
# OpenBLAS built on OpenMP: BLAS calls share our OpenMP thread pool (and run
# single-threaded inside our parallel regions) instead of fighting it.
BLAS_DIR ?= /usr/lib/x86_64-linux-gnu/openblas-openmp
CFLAGS  += -std=c11 -Wall -Wextra -Werror -fopenmp $(OPT) -g -MMD -MP \
           -Isrc -I/usr/include/x86_64-linux-gnu/openblas-openmp
LDLIBS  += -L$(BLAS_DIR) -Wl,-rpath,$(BLAS_DIR) -lopenblas -lpcre2-8 -lcjson -ledit -lmicrohttpd -lm -fopenmp

# Data-parallel training over MPI (src/train/dist.c): built in when Open MPI
# is found (mpicc, from libopenmpi-dev; MPI=0 turns it off). Without it
# minigpt is the same program, one process only.
MPICC    ?= $(shell command -v mpicc 2>/dev/null)
MPI      ?= $(if $(MPICC),1,0)
ifeq ($(MPI),1)
CFLAGS  += -DMG_MPI $(shell $(MPICC) --showme:compile)
LDLIBS  += $(shell $(MPICC) --showme:link)
endif

SRC      := $(shell find src -name '*.c' -not -path 'src/ops/cuda/*' | sort)
LIB_SRC  := $(filter-out src/main.c,$(SRC))
# the web app (web/), embedded in the binary: scripts/embed_web.sh writes its
# bytes into a generated C file (src/web/assets.h)
WEB_FILES := $(sort $(wildcard web/*.html web/*.css web/*.js web/*.svg))
WEB_GEN  := $(BUILD)/gen/web_assets.c
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o) $(WEB_GEN:%.c=%.o)
TEST_SRC := $(wildcard tests/unit/test_*.c)
TESTS    := $(TEST_SRC:tests/unit/%.c=$(BUILD)/tests/%)
ASAN_OPT := -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
TOOLS    := $(BUILD)/tools/parity_dump $(BUILD)/tools/tok_encode $(BUILD)/tools/logits_dump

# The CUDA backend, a plugin loaded at run time by src/ops/backend.c: built
# when nvcc is found (CUDA=0 turns it off). CUDA_ARCH defaults to the H100.
NVCC     ?= $(or $(shell command -v nvcc 2>/dev/null),$(wildcard /usr/local/cuda/bin/nvcc))
CUDA     ?= $(if $(NVCC),1,0)
CUDA_ARCH ?= -arch=sm_90
CUDA_LIB ?= $(dir $(NVCC))../lib64
CUDA_SRC := $(wildcard src/ops/cuda/*.cu)
CUDA_OBJ := $(CUDA_SRC:%.cu=$(BUILD)/%.o) $(BUILD)/cuda/common.o
NVFLAGS  := -std=c++20 -O3 $(CUDA_ARCH) -Xcompiler -fPIC,-Wall,-Wextra,-Werror -Isrc -MMD -MP
PLUGIN   := $(if $(filter 1,$(CUDA)),minigpt_cuda.so)

# libFuzzer targets (clang): the safetensors and tokenizer.json readers
FUZZ_CFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L -g -O1 -fsanitize=fuzzer,address,undefined -fopenmp -Isrc
FUZZ_DEPS_fuzz_safetensors := src/util/common.c src/util/atomic.c src/util/utf8.c src/io/safetensors.c
FUZZ_DEPS_fuzz_tokenizer_json := src/util/common.c src/util/atomic.c $(wildcard src/tokenizer/*.c)
FUZZ_DEPS_fuzz_hf_config := src/util/common.c src/io/hf_config.c
FUZZERS := $(BUILD)/fuzz/fuzz_safetensors $(BUILD)/fuzz/fuzz_tokenizer_json $(BUILD)/fuzz/fuzz_hf_config

# what `minigpt --version` prints: the version, the commit (-dirty with
# uncommitted changes) and the backends built
COMMIT   := $(shell c=$$(git rev-parse --short=12 HEAD 2>/dev/null) && \
              { git diff --quiet HEAD -- 2>/dev/null && echo $$c || echo $$c-dirty; } || echo unknown)
BACKENDS := cpu$(if $(PLUGIN), cuda (minigpt_cuda.so))$(if $(filter 1,$(MPI)), mpi)

.PHONY: all demo test check asan clean deps deps-test unit fuzzers install uninstall readme-flags format FORCE
all: minigpt

minigpt: $(BUILD)/minigpt $(PLUGIN)
	cp $< $@.tmp && mv -f $@.tmp $@

minigpt_cuda.so: $(BUILD)/minigpt_cuda.so
	cp $< $@.tmp && mv -f $@.tmp $@

$(BUILD)/minigpt_cuda.so: $(CUDA_OBJ)
	$(NVCC) $(CUDA_ARCH) -shared $^ -o $@ -L$(CUDA_LIB) -lcublasLt -Xlinker -rpath,$(CUDA_LIB)

$(BUILD)/src/ops/cuda/%.o: src/ops/cuda/%.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVFLAGS) -c $< -o $@

$(BUILD)/cuda/common.o: src/util/common.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fPIC -c $< -o $@

$(BUILD)/minigpt: $(BUILD)/src/main.o $(BUILD)/libminigpt.a
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

# rewritten only when its text changes, so that main.o rebuilds only then
$(BUILD)/version.h: FORCE
	@mkdir -p $(dir $@)
	@printf '#define MG_VERSION "%s"\n#define MG_COMMIT "%s"\n#define MG_BACKENDS "%s"\n' \
	    '$(VERSION)' '$(COMMIT)' '$(BACKENDS)' >$@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv -f $@.tmp $@; fi
$(BUILD)/src/main.o: $(BUILD)/version.h
$(BUILD)/src/main.o: CFLAGS += -I$(BUILD)

$(BUILD)/libminigpt.a: $(LIB_OBJ)
	rm -f $@ && ar rcs $@ $^

$(WEB_GEN): scripts/embed_web.sh $(WEB_FILES)
	@mkdir -p $(dir $@)
	sh scripts/embed_web.sh $@ $(WEB_FILES)

$(WEB_GEN:%.c=%.o): $(WEB_GEN)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libminigpt.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests $< $(BUILD)/libminigpt.a -o $@ $(LDLIBS) -lcmocka

$(BUILD)/tools/%: tests/tools/%.c $(BUILD)/libminigpt.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $< $(BUILD)/libminigpt.a -o $@ $(LDLIBS)

unit: $(TESTS) $(TOOLS)

fuzzers: $(FUZZERS)
$(BUILD)/fuzz/%: tests/fuzz/%.c $$(FUZZ_DEPS_%)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) $^ -o $@ -lpcre2-8 -lcjson -lm

# the CUDA plugin goes beside the binary, where src/ops/backend.c looks first
install: minigpt
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 755 minigpt $(DESTDIR)$(PREFIX)/bin/minigpt
	$(if $(PLUGIN),install -m 755 $(PLUGIN) $(DESTDIR)$(PREFIX)/bin/$(PLUGIN))
uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/minigpt $(DESTDIR)$(PREFIX)/bin/minigpt_cuda.so

# clang-format the C sources (tests/format.sh checks that nothing differs)
format:
	clang-format -i $$(git ls-files 'src/*.c' 'src/*.h' 'tests/unit/*.c' 'tests/tools/*.c' 'tests/fuzz/*.c' 'bench/*.c')

readme-flags: minigpt
	scripts/readme_flags.sh README.md

deps:
	@scripts/deps.sh build
deps-test:
	@scripts/deps.sh test

# The demo trains into models/ and replaces only its own earlier run there
# (marked by models/.demo-run): a run of the user's in models/ is refused.
demo: deps
	$(MAKE) minigpt
	@if [ ! -e models/.demo-run ] && { ls models/*.safetensors >/dev/null 2>&1 || [ -e models/train_log.jsonl ]; }; then \
	    echo "make demo: models/ holds a run of yours; move it, or replace it with:" \
	         "./minigpt train --minutes 5 --overwrite" >&2; exit 1; fi
	./minigpt train --minutes 5 $$([ -e models/.demo-run ] && echo --overwrite)
	touch models/.demo-run
	./minigpt generate --prompt "O Brasil é" --max-tokens 200 --temperature 0.8 --seed 42

test: deps-test
	$(MAKE) minigpt unit fuzzers
	$(MAKE) asan
	tests/run_all.sh
check: test

asan:
	$(MAKE) BUILD=build-asan OPT="$(ASAN_OPT)" LDLIBS="$(LDLIBS) -fsanitize=address,undefined" \
	    build-asan/minigpt unit

clean:
	rm -rf build build-asan minigpt minigpt_cuda.so

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
