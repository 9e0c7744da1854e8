"""ffprobe, ladder planning, ffmpeg command building, supervised subprocesses, progress."""
