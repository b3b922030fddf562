"""Videos in: finding them (find), choosing frames (sampling), decoding them (decode), in worker processes
(decode_workers); content identity (fingerprints); the synthetic demo dataset (demo_data). No Keras here."""
