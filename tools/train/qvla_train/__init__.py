"""qvla training code: a batched autograd port of tools/reference/qvla_ref, shard data loading, the trainer."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
REF = os.path.join(REPO, "tools", "reference")
if REF not in sys.path:
    sys.path.insert(0, REF)
