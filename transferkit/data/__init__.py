"""Data: every input form -> Examples -> encoded labels -> DataLoaders. Knows no backbone family."""
from .labels import build_labels, check_classes, detect_task, encode, stratified_split
from .loaders import DecodedInputs, ExampleDataset, make_loader
from .sources import Examples, read_dataset

__all__ = ["DecodedInputs", "ExampleDataset", "Examples", "build_labels", "check_classes", "detect_task", "encode", "make_loader",
           "read_dataset", "stratified_split"]
