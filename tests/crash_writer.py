"""A process for crash tests to kill: it changes an index in a loop and reports each change.

    python -m tests.crash_writer WORKSPACE SEED

Adds clips, replaces some (a changed file's new version) and deletes some, forever. Each
change is printed once ChunkIndex has returned, so a printed change is an acknowledged one:
``added URI=VERSION ...``, ``deleting URI ...`` before a delete and ``deleted`` after it.
"""

import sys
import zlib

import numpy as np

from audiosearch.index import ChunkIndex, ClipToAdd

DIM = 24
ENCODER = "crash/1"


def expected_vectors(uri: str, version: str) -> np.ndarray:
    """The vectors stored for ``uri`` at ``version``: 1 to 8 rows that depend on both."""
    rng = np.random.default_rng(zlib.crc32(f"{uri}@{version}".encode()))
    return rng.standard_normal((int(rng.integers(1, 9)), DIM)).astype(np.float32)


def main(workspace: str, seed: int) -> None:
    """Change the index in ``workspace`` until killed."""
    rng = np.random.default_rng(seed)
    with ChunkIndex(workspace) as index:
        for n in range(10**6):
            clips = []
            for i in range(int(rng.integers(1, 6))):
                if len(index) and rng.random() < 0.3:  # a file changed: its new version
                    uri = index.clips(offset=int(rng.integers(len(index))), limit=1)[0].uri
                else:
                    uri = f"clip-{seed}-{n}-{i}"
                version = f"v{seed}.{n}"
                vectors = expected_vectors(uri, version)
                starts = np.arange(len(vectors)) * 2.0
                clips.append(ClipToAdd(uri, 2.0 * len(vectors) + 2, starts, starts + 4,
                                       vectors, version))  # fmt: skip
            index.add(clips, encoder=ENCODER)
            print("added", *(f"{c.uri}={c.fingerprint}" for c in clips), flush=True)
            if n % 4 == 3:  # deletes leave dead rows, which compaction drops
                doomed = index.clips(limit=int(rng.integers(1, 8)))
                print("deleting", *(c.uri for c in doomed), flush=True)
                index.delete([c.clip_id for c in doomed])
                print("deleted", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
