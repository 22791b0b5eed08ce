"""Datasets for the benchmark: generators, official-format builder and reader.

    from trm.data.build import build_dataset      # DataSpec -> <out>/{train,test}/...
    from trm.data.dataset import load_split       # <out>, "train"|"test" -> PuzzleSplit
"""
