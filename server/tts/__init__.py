"""The TTS server: TtsService streaming PCM speech, one engine per language."""
