"""Data: every input form -> Examples -> encoded labels -> DataLoaders. Knows no backbone family."""
from .labels import build_labels, check_classes, detect_task, encode, stratified_split
from .loaders import ExampleDataset, make_loader
from .sources import Examples, read_dataset

__all__ = ["ExampleDataset", "Examples", "build_labels", "check_classes", "detect_task", "encode", "make_loader",
           "read_dataset", "stratified_split"]
