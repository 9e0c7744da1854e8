"""Transcoding jobs: the API side, the worker pool, and HLS delivery."""
