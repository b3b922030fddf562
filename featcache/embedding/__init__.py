"""Stage one: what to embed (embed), with which settings (options), whether it fits the machine (resources),
decoding beside the model (batching), the checks each embedded video passes (checks), and the engines that run
it (local_engine on this machine, ray_engine and ray_cluster on a Ray cluster)."""
