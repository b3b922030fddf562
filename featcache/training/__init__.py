"""Stage two, by step: the split (splits), the training data in memory or streamed (training_data), batches of it
for any epoch (batches; clips of stored frames: clips), the heads (heads), fitting one (train; epochs keeps the
best epoch, diagnostics says what a user must hear), scoring it on cached features (scoring), comparing heads
(compare), the model folder they are saved in (model_folder), and a cache as data for your own training loop
(datasets, torch_dataset)."""
