"""Stage two: the split (splits), clips of stored frames (clips), the heads (heads), training them (train) and
comparing them (compare), the model folder they are saved in (model_folder), and a cache as data for your own
training loop (datasets, torch_dataset)."""
