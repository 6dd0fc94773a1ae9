"""Speech recognition: packaged Whisper models, Silero VAD endpointing, streaming transcripts.

`StreamingRecognizer` (streaming.py) is the entry point for the dialog core:
feed PCM as it arrives, read `SpeechStarted` / `PartialTranscript` /
`FinalTranscript` events.
"""
