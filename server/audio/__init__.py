"""The speech input format every path into the recognizer shares: PCM16 checks and WAV decoding.

Plumbing, not a domain: the gRPC dialog path and the bridge's Gateway audio streams both check
input here before the ASR package sees a sample, so a bad chunk gets one precise answer.
"""
