"""Decodes Xpress streams with Fox-IT's dissect.util, for tests/xpress_dissect.rs.

Usage: python xpress_dissect.py DIR. Every DIR/*.plain is decoded with
dissect.util.compression.lzxpress and every DIR/*.huffman with lzxpress_huffman; the output goes
to the same name + ".out", or the exception to + ".err". Prints the dissect.util version.
"""
import importlib.metadata
import pathlib
import sys

from dissect.util.compression import lzxpress, lzxpress_huffman

DECODERS = {".plain": lzxpress.decompress, ".huffman": lzxpress_huffman.decompress}

print(importlib.metadata.version("dissect.util"))
for path in sorted(pathlib.Path(sys.argv[1]).iterdir()):
    decode = DECODERS.get(path.suffix)
    if decode is None:
        continue
    try:
        out = decode(path.read_bytes())
    except Exception as e:  # a failure is a result to report, not a crash of the check
        path.with_name(path.name + ".err").write_text(f"{type(e).__name__}: {e}")
    else:
        path.with_name(path.name + ".out").write_bytes(out)
