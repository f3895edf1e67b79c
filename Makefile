# The README's two commands: `make demo` and `make test`.
SWIFT ?= swift
APT_PACKAGES := libopenblas-dev libprotobuf-c-dev protobuf-c-compiler libhdf5-dev libjpeg62-turbo-dev libpng-dev pkg-config
FIXTURE := Fixtures/tiny12
IDLEVIT := .build/release/idlevit

.PHONY: demo test deps build release

## Installs the Debian packages the build links against, when any is missing.
deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq $$missing; \
	fi

release: deps
	$(SWIFT) build -c release --product idlevit

## The main job on the bundled tiny12 fixture: inspect it, then verify it against PyTorch.
demo: release
	$(IDLEVIT) inspect $(FIXTURE)/model.safetensors
	$(IDLEVIT) verify $(FIXTURE)/model.safetensors --input $(FIXTURE)/input.safetensors --reference $(FIXTURE)/reference.safetensors
	$(IDLEVIT) stats $(FIXTURE)/model.safetensors --keep-ratio 0.7
	$(IDLEVIT) verify $(FIXTURE)/model.safetensors --keep-ratio 0.7 --input $(FIXTURE)/input.safetensors --reference $(FIXTURE)/idle-0.7.safetensors

## The test suite, on the committed fixtures.
test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

.PHONY: onnx-proto

# Regenerates the protobuf-c code of the ONNX schema subset (needs protobuf-c-compiler).
# The output is committed, so building needs no protobuf compiler.
onnx-proto:
	protoc-c --proto_path=Schemas --c_out=Sources/COnnx Schemas/onnx.proto
	mv Sources/COnnx/onnx.pb-c.h Sources/COnnx/include/onnx.pb-c.h

.PHONY: fuzz

## libFuzzer targets of every parser (Fuzz/README.md): `make fuzz SECONDS=600 TARGET=onnx`.
## Builds Fuzz/ (its own package, never part of `make test`), runs each target for SECONDS.
SECONDS ?= 60
TARGET ?=
fuzz: deps
	bash Fuzz/run.sh $(SECONDS) $(TARGET)
