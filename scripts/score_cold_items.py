"""Score new items against every user of a saved model: top-k users per item to Parquet.

    python scripts/score_cold_items.py ITEMS --model-dir DIR --out scores.parquet \
        [--k K] [--chunk-size N] [--overwrite] [--on-existing error|skip|score] [--no-resume] \
        [--store EMBEDDING_STORE]

ITEMS is a CSV, TSV, Parquet or JSON Lines file read a chunk at a time, so
memory stays bounded whatever its size. Results are written chunk by chunk; a
run that was killed picks up where it stopped when started again with the same
arguments (``--no-resume`` starts afresh). The same as ``hybrid-rec score-cold``.
"""

from __future__ import annotations

import sys

from hybrid_rec.cli import main

if __name__ == "__main__":
    sys.argv = ["hybrid-rec", "score-cold", *sys.argv[1:]]
    main()
