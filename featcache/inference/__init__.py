"""Using a trained model: scoring it on a cache (evaluate), classifying new videos (predict) and the windows of
long ones (windows)."""
