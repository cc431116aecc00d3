"""Top-k items for many users of a saved model, written to Parquet chunk by chunk.

    python scripts/recommend_users.py --model-dir DIR --out recs.parquet \
        [--users USERS_FILE] [--k K] [--chunk-size N] [--skip-unknown] [--overwrite] [--no-resume]

Every known user by default, or those in USERS_FILE (a ``user_id`` column).
A killed run picks up where it stopped when started again with the same
arguments. The same as ``hybrid-rec recommend-batch``.
"""

from __future__ import annotations

import sys

from hybrid_rec.cli import main

if __name__ == "__main__":
    sys.argv = ["hybrid-rec", "recommend-batch", *sys.argv[1:]]
    main()
