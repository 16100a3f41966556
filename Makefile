# seawatch: `make demo` and `make test` work on a fresh machine (Python 3.11 + pip).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
BASE   := $(VENV)/.installed-base
TRAIN  := $(VENV)/.installed-train

.PHONY: demo test lint models otolith-teacher bench bench-latency bench-workers bench-lanes soak fuzz gpu-check clean

$(BASE): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

# torch 2.13.0 CPU comes from a local wheel on these machines; keep the version pinned.
$(TRAIN): $(BASE)
	$(BIN)/python -m pip install -q -e '.[train,dev]'
	touch $@

demo: $(BASE)
	$(BIN)/seawatch demo

test: $(TRAIN)
	$(BIN)/python -m ruff check src tests benchmarks scripts fuzz
	$(BIN)/python -m pytest --durations=30

lint: $(BASE)
	$(BIN)/python -m ruff check src tests benchmarks scripts fuzz
	$(BIN)/python -m ruff format --check src tests benchmarks scripts fuzz

# The committed demo models, each trained on its synthetic generator (seeded), then scored
# on its held-out test split through ONNX Runtime (the evaluation plots come from evaluate);
# the plankton card then gets its review-queue ranking, fitted on the validation cruise, and
# its out-of-distribution score (ood.npz; a retrained graph invalidates the old one).
# The segmentation network comes first: the plankton classifier also learns from the crops
# it cuts (what the daemon serves with method: model).
# The otolith detector distils from the committed pretrained teacher (models/otolith-teacher,
# made once by `make otolith-teacher`, the way a detector would start from a backbone).
models: $(TRAIN)
	$(BIN)/seawatch train segmentation --out models/segmentation
	$(BIN)/seawatch train plankton --out models/plankton \
		--segmentation-model models/segmentation
	$(BIN)/seawatch train otolith --out models/otolith \
		--teacher-weights models/otolith-teacher/teacher.pt
	$(BIN)/seawatch train fish --out models/fish
	$(BIN)/seawatch evaluate plankton --model models/plankton
	$(BIN)/seawatch train plankton-ranking --model models/plankton --seed 7100013
	$(BIN)/seawatch train plankton-ood --model models/plankton
	$(BIN)/seawatch evaluate otolith --model models/otolith
	$(BIN)/seawatch evaluate fish --model models/fish

# Once, long (about an hour on 2 CPU cores): pretrain the otolith teacher on the synthetic
# auxiliary task (24 plain + 72 hard-negative epochs); writes teacher.pt and teacher.json.
otolith-teacher: $(TRAIN)
	$(BIN)/seawatch train otolith-teacher --out models/otolith-teacher

bench: $(BASE)  # the committed models; --otolith-build quick|full-arch would need torch
	$(BIN)/pip install -q quixstreams  # the Quix Streams peer (the bench extra)
	$(BIN)/python benchmarks/pipeline.py

# Latency against offered load, and scaling with --workers (each a few minutes).
bench-latency: $(BASE)
	$(BIN)/python benchmarks/latency.py
bench-workers: $(BASE)
	$(BIN)/python benchmarks/workers.py
bench-lanes: $(BASE)
	$(BIN)/python benchmarks/lanes.py

# Ten minutes at 80 % of the measured maximum: memory, errors, latency (issue 7).
soak: $(BASE)
	$(BIN)/python benchmarks/soak.py

# The frame-parser fuzz target for ten minutes (CI runs it for 30 s in the tests), on a copy of
# the seed corpus: new inputs and any crash files stay in the folder printed at the end.
fuzz: $(BASE)
	@work=$$(mktemp -d) && cp -r fuzz/corpus/frame_parser $$work/corpus && \
	$(BIN)/python fuzz/fuzz_frame_parser.py -max_total_time=600 -rss_limit_mb=2048 -timeout=20 \
		-print_final_stats=1 -artifact_prefix=$$work/ $$work/corpus; \
	status=$$?; echo "fuzz corpus and findings: $$work"; exit $$status

# On a machine with an NVIDIA GPU: every backend there on every committed model (parity,
# throughput) and the pipeline on the GPU, into benchmarks/results/gpu.json (under 8 min).
gpu-check:
	scripts/gpu_check.sh

clean:
	rm -rf $(VENV) seawatch-data .pytest_cache .ruff_cache
