"""Speech recognition: packaged Whisper models, Silero VAD, semantic end of turn, streaming transcripts.

`StreamingRecognizer` (streaming.py) is the entry point for the dialog core:
feed PCM as it arrives, read `SpeechStarted` / `PartialTranscript` /
`FinalTranscript` events. `speech_input.py` loads and warms the models once per
process; `turn_detector.py` and `transcript_cues.py` judge whether an utterance is finished.
"""
