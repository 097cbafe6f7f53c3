"""Data: every input form -> Examples -> DataLoaders. Knows no backbone family; labels are the task's (``tasks``)."""
from .labels import stratified_split
from .loaders import DecodedInputs, ExampleDataset, make_loader
from .sources import Examples, read_dataset

__all__ = ["DecodedInputs", "ExampleDataset", "Examples", "make_loader", "read_dataset", "stratified_split"]
