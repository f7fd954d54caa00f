"""RMB in: the item records, reading and checking the dataset's files, the selection of items,
and the pinned copy `rmb data fetch` downloads (benchmark.data.fetch).

The records and loaders are re-exported here: `from benchmark.data import Item, load`."""

from benchmark.perf import return_freed_memory

from .items import (
    PREFERRED,
    SUBSETS,
    BoNItem,
    Category,
    DataError,
    Goal,
    Item,
    PairwiseItem,
    Response,
    SetName,
    outline,
)
from .load import (
    DATASET_DIR,
    Dataset,
    Manifest,
    ManifestFile,
    dataset_files,
    dataset_root,
    load,
    load_dataset,
    load_file,
    pinned_manifest,
)
from .records import QUIRK_KINDS, Quirk, find_quirks, parse_record
from .selection import Selection, stable_rank

__all__ = [
    "DATASET_DIR",
    "PREFERRED",
    "QUIRK_KINDS",
    "SUBSETS",
    "BoNItem",
    "Category",
    "DataError",
    "Dataset",
    "Goal",
    "Item",
    "Manifest",
    "ManifestFile",
    "PairwiseItem",
    "Quirk",
    "Response",
    "Selection",
    "SetName",
    "dataset_files",
    "dataset_root",
    "find_quirks",
    "load",
    "load_dataset",
    "load_file",
    "outline",
    "parse_record",
    "pinned_manifest",
    "return_freed_memory",
    "stable_rank",
]
